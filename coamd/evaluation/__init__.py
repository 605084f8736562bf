"""Evaluation: the independent text-motion evaluator, metric definitions and the ``coamd eval`` report."""
