"""Answers from run dirs: tables, log-log transfer fits, learning curves, cost-accuracy, similarity, report."""
