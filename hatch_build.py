"""Hatchling build hook: ship lion_nnunet_ext.pth (nnU-Net trainer discovery) in both wheel kinds.

Hatchling's editable wheels do not carry ``force-include`` entries, so the start-up file is added
through ``force_include_editable`` for ``pip install -e .`` and ``force_include`` for wheels.
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PTH = "lion_nnunet/trainers/lion_nnunet_ext.pth"


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        key = "force_include_editable" if version == "editable" else "force_include"
        build_data.setdefault(key, {})[PTH] = "lion_nnunet_ext.pth"
