"""Measured costs: energy meters and the model that turns a Cost into one number."""

from edgefmp.cost.meters import EnergyMeter, EstimatedMeter, select_meter
from edgefmp.cost.model import CostModel

__all__ = ["CostModel", "EnergyMeter", "EstimatedMeter", "select_meter"]
