"""Scoring explainers against models whose answer is known (planted concept channels), and sanity checks."""

from .ranks import afi_channel_importance, images_of_class, planted_rank, ranking_table, score_planted_model
from .sanity import (cascading_randomization_check, label_randomization_check, rank_correlation, split_half_stability,
                     system_rankings, top_k_overlap)
from .plotting import plot_sanity_checks
from .study import ground_truth_study, planted_examples, study_to_json

__all__ = ["afi_channel_importance", "cascading_randomization_check", "ground_truth_study", "images_of_class",
           "label_randomization_check", "planted_examples", "planted_rank", "plot_sanity_checks", "rank_correlation",
           "ranking_table", "score_planted_model", "split_half_stability", "study_to_json", "system_rankings",
           "top_k_overlap"]
