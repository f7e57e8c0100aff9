"""Metaflow: the 20-wide fan-out as a foreach (start → 20 × work → join), plus the `end` step every
flow must have: 23 tasks where twinloop's pipeline has 22."""

from metaflow import FlowSpec, step


class Fanout20(FlowSpec):
    @step
    def start(self):
        self.items = list(range(20))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Fanout20()
