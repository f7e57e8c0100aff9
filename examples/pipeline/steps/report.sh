# Writes a one-line summary of the model.
echo "model for run $TWINLOOP_RUN_ID: $(cat "$TWINLOOP_INPUT_MODEL")" > "$TWINLOOP_OUTPUT_SUMMARY"
