"""A label source's model as it is used: one model package, or several packages of the same label
source and inputs (e.g. the k fold models of a cross-validation) whose probabilities are averaged
before the threshold, as nnU-Net averages its five folds.

The members must agree on everything that makes their outputs comparable (inputs, preprocessing,
threshold); they run in the same input pass, so an ensemble of k costs k networks, not k passes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import OsteoSegError
from .package import ModelPackage


@dataclass
class ModelGroup:
    """One label source's model: a single package or an ensemble of packages."""

    members: list[ModelPackage]

    @property
    def label_source(self) -> str:
        return self.members[0].card["label_source"]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.members[0].inputs

    @property
    def threshold(self) -> float:
        return self.members[0].card.get("threshold", 0.5)

    @property
    def name(self) -> str:
        if len(self.members) == 1:
            return self.members[0].name
        return f"{self.label_source}_{'+'.join(self.inputs)}_ensemble_of_{len(self.members)}"

    @property
    def weights_sha256(self) -> str:
        """The member's weights hash, or for an ensemble a hash over its members' (sorted) hashes."""
        hashes = sorted(member.card["weights_sha256"] for member in self.members)
        return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()

    @property
    def card(self) -> dict:
        """The first member's card, named for the group, with every member's name and hash."""
        return {**self.members[0].card, "name": self.name, "weights_sha256": self.weights_sha256,
                "members": [{"name": m.name, "weights_sha256": m.card["weights_sha256"]} for m in self.members]}

    def average(self, probabilities: dict[str, np.ndarray]) -> np.ndarray:
        """The members' probability volumes (by model name) averaged."""
        stack = [probabilities[member.name] for member in self.members]
        return stack[0] if len(stack) == 1 else np.mean(stack, axis=0, dtype=np.float32)


def group_models(models: list[ModelPackage]) -> list[ModelGroup]:
    """Models of the same label source and inputs become one ensemble (in the order first seen);
    members that would not give comparable probabilities are refused."""
    groups: dict[tuple, ModelGroup] = {}
    for model in models:
        key = (model.card["label_source"], tuple(model.inputs))
        groups.setdefault(key, ModelGroup([])).members.append(model)
    for group in groups.values():
        first = group.members[0]
        names = [member.name for member in group.members]
        if len(set(names)) != len(names):
            raise OsteoSegError(f"the models of label source {group.label_source!r} share a name ({', '.join(names)}); "
                                "an ensemble's members need distinct names", path=first.folder)
        for member in group.members[1:]:
            for key in ("threshold", "preprocessing"):
                if member.card.get(key) != first.card.get(key):
                    raise OsteoSegError(f"models {first.name!r} and {member.name!r} (both label source "
                                        f"{group.label_source!r}, inputs {'+'.join(group.inputs)}) differ in {key}: "
                                        "they cannot be averaged as one ensemble", path=member.folder)
    return list(groups.values())
