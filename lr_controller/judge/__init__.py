"""The judge: the step-decay baseline, the peers, the evaluation protocol, statistics, costs and the report."""
