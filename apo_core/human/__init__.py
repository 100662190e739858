"""Who watches the robot: the scripted expert, the simulated human, a real teleoperator.

    expert.py    MetaWorld's scripted policies as the demonstrator
    takeover.py  the simulated human: takes over when the robot heads for failure
    teleop.py    a person on one of LeRobot's teleoperators
"""

from apo_core.human.expert import ScriptedExpert
from apo_core.human.takeover import Overseer, SimulatedHuman
from apo_core.human.teleop import TeleopHuman

__all__ = ["Overseer", "ScriptedExpert", "SimulatedHuman", "TeleopHuman"]
