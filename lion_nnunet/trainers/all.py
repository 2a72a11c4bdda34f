"""Every LION trainer class, for nnU-Net's trainer search (see discovery.py)."""

from lion_nnunet.trainers.authors import nnUNetTrainerDA5_2000epochs  # noqa: F401
from lion_nnunet.trainers.clicks import (  # noqa: F401
    nnUNetTrainer_LION_Clicks,
    nnUNetTrainer_LION_Clicks_1ep_4it,
    nnUNetTrainer_LION_Clicks_demo,
    nnUNetTrainer_LION_ClicksEdt_demo,
)
from lion_nnunet.trainers.cpu_demo import *  # noqa: F403
from lion_nnunet.trainers.lion import (  # noqa: F401
    nnUNetTrainer_LION,
    nnUNetTrainer_LION_uniformSampling,
    nnUNetTrainer_LION_unweighted,
)
from lion_nnunet.trainers.schedules import *  # noqa: F403
from lion_nnunet.trainers.variants import *  # noqa: F403
