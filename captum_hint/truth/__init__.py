"""Scoring explainers against models whose answer is known (planted concept channels)."""

from .ranks import planted_rank, ranking_table, score_planted_model

__all__ = ["planted_rank", "ranking_table", "score_planted_model"]
