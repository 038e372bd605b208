"""Losses: pure functions and small modules, AMP-safe (log-sum-exp in float32, never exp-then-sum)."""

from cpc.losses.infonce import InfoNCEConfig, InfoNCEOutput, chance_loss, info_nce, sample_negatives
from cpc.losses.predictive import predictive_coding_loss
from cpc.losses.barlow import barlow_twins_loss
from cpc.losses.byol import byol_loss
from cpc.losses.moco import moco_infonce
from cpc.losses.ntxent import nt_xent
