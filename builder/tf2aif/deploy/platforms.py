"""Where each tf2aif platform runs in a Kubernetes cluster: node labels, device resources, taints.

The labels are the ones the vendors' own node labelling publishes, so a cluster that runs the
vendor's device plugin and Node Feature Discovery (NFD) needs no hand-made labels:

- gpu:   `nvidia.com/gpu.present=true` (NVIDIA GPU operator / GPU feature discovery) and the
         `nvidia.com/gpu` resource of the NVIDIA device plugin.
- agx:   `feature.node.kubernetes.io/cpu-model.vendor_id=NVIDIA`, the NFD label NVIDIA's own
         GPU-feature-discovery DaemonSet selects Tegra (Jetson) nodes by, and `nvidia.com/gpu`,
         which the NVIDIA device plugin also advertises on Jetson.
- alveo: `feature.node.kubernetes.io/pci-10ee.present=true` (NFD PCI source, Xilinx vendor id 10ee,
         with `deviceLabelFields: [vendor]`) and a Xilinx FPGA device plugin resource named
         `amd.com/<shell>`; the shell name depends on the card and its flashed shell, so it is
         overridable (`--fpga-resource`).
Every platform also pins `kubernetes.io/arch`. Platforms added by recipes get the arch of their
image when it is single-arch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from tf2aif.errors import Tf2aifError

__all__ = ["DEFAULT_FPGA_RESOURCE", "PROFILES", "PlatformProfile", "profile_for"]

DEFAULT_FPGA_RESOURCE = "amd.com/xilinx_u50_gen3x16_xdma_base_5-0"
_NVIDIA_GPU = "nvidia.com/gpu"


@dataclass(frozen=True, kw_only=True)
class PlatformProfile:
    arch: str  # kubernetes.io/arch value: amd64 | arm64
    node_labels: tuple[tuple[str, str], ...] = ()
    device_resource: str | None = None  # extended resource requested once per replica
    taint_keys: tuple[str, ...] = ()  # NoSchedule taints the pods tolerate

    @property
    def node_selector(self) -> dict[str, str]:
        return {"kubernetes.io/arch": self.arch, **dict(self.node_labels)}


PROFILES: Mapping[str, PlatformProfile] = {
    "cpu": PlatformProfile(arch="amd64"),
    "arm": PlatformProfile(arch="arm64"),
    "gpu": PlatformProfile(
        arch="amd64",
        node_labels=(("nvidia.com/gpu.present", "true"),),
        device_resource=_NVIDIA_GPU,
        taint_keys=(_NVIDIA_GPU,),
    ),
    "agx": PlatformProfile(
        arch="arm64",
        node_labels=(("feature.node.kubernetes.io/cpu-model.vendor_id", "NVIDIA"),),
        device_resource=_NVIDIA_GPU,
        taint_keys=(_NVIDIA_GPU,),
    ),
    "alveo": PlatformProfile(
        arch="amd64",
        node_labels=(("feature.node.kubernetes.io/pci-10ee.present", "true"),),
        device_resource=DEFAULT_FPGA_RESOURCE,
    ),
}

_OCI_ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def profile_for(
    platform: str, *, image_platforms: tuple[str, ...] = (), fpga_resource: str | None = None
) -> PlatformProfile:
    """The profile of a tf2aif platform; an unknown one is placed by its single-arch image."""
    profile = PROFILES.get(platform)
    if profile is None:
        arches = sorted({_OCI_ARCH.get(p, p.rpartition("/")[2]) for p in image_platforms})
        if len(arches) != 1:
            known = ", ".join(PROFILES)
            raise Tf2aifError(
                f"platform {platform!r} has no Kubernetes profile (known: {known}) and its image "
                f"is not single-arch ({', '.join(image_platforms) or 'no platforms recorded'}), "
                "so its node arch is unknown"
            )
        profile = PlatformProfile(arch=arches[0])
    if fpga_resource and platform == "alveo":
        profile = replace(profile, device_resource=fpga_resource)
    return profile
