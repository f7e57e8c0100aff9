"""Metaflow: the 5-step no-op chain (start → s2 → s3 → s4 → end; Metaflow requires start and end)."""

from metaflow import FlowSpec, step


class Chain5(FlowSpec):
    @step
    def start(self):
        self.next(self.s2)

    @step
    def s2(self):
        self.next(self.s3)

    @step
    def s3(self):
        self.next(self.s4)

    @step
    def s4(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Chain5()
