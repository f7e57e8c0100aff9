"""A twinloop training set as a Spark job, written by `twinloop features get-historical` with the
Spark engine and run by spark-submit: `spark-submit … job.py plan.json`.

plan.json (written by twinloop) names the staged entity rows, each view's source (and the rows
pushed to it), the query, and where the result and the source row counts go. The query is built
by twinloop from the feature views; this script only reads, registers, runs and writes.
"""

import json
import sys

from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F


def read_source(spark, source):
    reader = spark.read
    if source["glob_filter"]:
        reader = reader.option("pathGlobFilter", source["glob_filter"])
    if source["format"] == "csv":
        frame = reader.option("header", True).option("inferSchema", True).csv(source["location"])
    else:
        frame = reader.parquet(source["location"])
    if source["push_log"]:
        # Pushed rows hold the columns of the pushes; the source's others read as nulls.
        pushed = spark.read.option("pathGlobFilter", "*.parquet").parquet(source["push_log"])
        names = set(pushed.columns)
        aligned = pushed.select(
            [
                (pushed[f.name] if f.name in names else F.lit(None))
                .cast(f.dataType)
                .alias(f.name)
                for f in frame.schema.fields
            ]
        )
        frame = frame.unionByName(aligned)
    return frame


def main(plan_path):
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    spark = SparkSession.builder.getOrCreate()
    spark.read.parquet(plan["entities"]).createOrReplaceTempView("twinloop_entities")
    # Each source's rows are counted while the query reads them (an observation, not another
    # pass over the files).
    counted = {}
    for source in plan["sources"]:
        counted[source["view"]] = Observation(source["table"])
        rows = F.count(F.lit(1)).alias("rows")
        frame = read_source(spark, source).observe(counted[source["view"]], rows)
        frame.createOrReplaceTempView(source["table"])
    spark.sql(plan["sql"]).write.mode("overwrite").parquet(plan["output"])
    source_rows = {view: observation.get["rows"] for view, observation in counted.items()}
    with open(plan["stats"], "w", encoding="utf-8") as f:
        json.dump({"source_rows": source_rows}, f)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
