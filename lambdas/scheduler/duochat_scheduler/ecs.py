"""ECS services and their Application Auto Scaling targets: find them, read and set their counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_NAMESPACE = "ecs"
_DIMENSION = "ecs:service:DesiredCount"


@dataclass(frozen=True)
class Capacity:
    """A service's desired count and, when it has a scalable target, its bounds."""

    desired: int
    min_capacity: int | None = None
    max_capacity: int | None = None

    @property
    def scalable(self) -> bool:
        return self.min_capacity is not None and self.max_capacity is not None

    @property
    def running(self) -> bool:
        """False when held at zero. Bounds of 0/0 mean held even if the count is not 0 yet
        (a stop that failed half-way), so such a capacity is never recorded as the truth."""
        if self.scalable:
            return (self.max_capacity or 0) > 0
        return self.desired > 0

    def describe(self) -> str:
        if not self.scalable:
            return f"desired={self.desired}"
        return f"desired={self.desired} min={self.min_capacity} max={self.max_capacity}"


@dataclass(frozen=True)
class ServiceRef:
    arn: str
    cluster_name: str

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def resource_id(self) -> str:
        """The Application Auto Scaling resource id, ``service/<cluster>/<service>``."""
        return f"service/{self.cluster_name}/{self.name}"


class EcsServices:
    """Thin operations over the ECS and Application Auto Scaling clients for one cluster."""

    def __init__(self, *, ecs: Any, autoscaling: Any, cluster_arn: str, cluster_name: str):
        self._ecs = ecs
        self._autoscaling = autoscaling
        self._cluster = cluster_arn
        self._cluster_name = cluster_name

    def find(self, *, tag_key: str, tag_value: str, arns: tuple[str, ...] = ()) -> list[ServiceRef]:
        """Return the configured services, or else every service carrying the tag."""
        if arns:
            return [ServiceRef(arn=arn, cluster_name=self._cluster_name) for arn in arns]
        found: list[ServiceRef] = []
        all_arns: list[str] = []
        for page in self._ecs.get_paginator("list_services").paginate(cluster=self._cluster):
            all_arns.extend(page["serviceArns"])
        for start in range(0, len(all_arns), 10):  # DescribeServices takes at most 10
            reply = self._ecs.describe_services(
                cluster=self._cluster, services=all_arns[start : start + 10], include=["TAGS"]
            )
            for service in reply["services"]:
                tags = {t["key"]: t["value"] for t in service.get("tags", [])}
                if tags.get(tag_key) == tag_value:
                    found.append(ServiceRef(service["serviceArn"], self._cluster_name))
        return sorted(found, key=lambda ref: ref.name)

    def read(self, ref: ServiceRef) -> Capacity:
        """Read the service's desired count and its scalable target's bounds, if any."""
        reply = self._ecs.describe_services(cluster=self._cluster, services=[ref.arn])
        if not reply["services"]:
            reason = reply["failures"][0]["reason"] if reply.get("failures") else "not found"
            raise LookupError(f"service {ref.name}: {reason}")
        desired = int(reply["services"][0]["desiredCount"])
        targets = self._autoscaling.describe_scalable_targets(
            ServiceNamespace=_NAMESPACE, ResourceIds=[ref.resource_id], ScalableDimension=_DIMENSION
        )["ScalableTargets"]
        if not targets:
            return Capacity(desired=desired)
        return Capacity(
            desired=desired,
            min_capacity=int(targets[0]["MinCapacity"]),
            max_capacity=int(targets[0]["MaxCapacity"]),
        )

    def apply(self, ref: ServiceRef, target: Capacity) -> None:
        """Set the scaling bounds first (so autoscaling cannot undo us), then the desired count."""
        if target.scalable:
            self._autoscaling.register_scalable_target(
                ServiceNamespace=_NAMESPACE,
                ResourceId=ref.resource_id,
                ScalableDimension=_DIMENSION,
                MinCapacity=target.min_capacity,
                MaxCapacity=target.max_capacity,
            )
        self._ecs.update_service(
            cluster=self._cluster, service=ref.arn, desiredCount=target.desired
        )
