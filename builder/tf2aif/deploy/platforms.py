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
Every platform also pins `kubernetes.io/arch`, the arch its recipes' platform table gives
(tf2aif.pipeline.recipes, so a platform added by a recipe folder is known here too); a platform
no recipe defines gets the arch of its image when that is single-arch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from tf2aif.errors import DeployError
from tf2aif.pipeline.recipes import platform_arches

__all__ = ["DEFAULT_FPGA_RESOURCE", "DEVICES", "Device", "PlatformProfile", "profile_for"]

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


@dataclass(frozen=True, kw_only=True)
class Device:
    """How the accelerator of a platform is found on a node and requested by a pod."""

    node_labels: tuple[tuple[str, str], ...] = ()
    device_resource: str | None = None
    taint_keys: tuple[str, ...] = ()


# Platforms whose nodes carry an accelerator; the arch of every platform comes from the recipes.
DEVICES: Mapping[str, Device] = MappingProxyType(
    {
        "gpu": Device(
            node_labels=(("nvidia.com/gpu.present", "true"),),
            device_resource=_NVIDIA_GPU,
            taint_keys=(_NVIDIA_GPU,),
        ),
        "agx": Device(
            node_labels=(("feature.node.kubernetes.io/cpu-model.vendor_id", "NVIDIA"),),
            device_resource=_NVIDIA_GPU,
            taint_keys=(_NVIDIA_GPU,),
        ),
        "alveo": Device(
            node_labels=(("feature.node.kubernetes.io/pci-10ee.present", "true"),),
            device_resource=DEFAULT_FPGA_RESOURCE,
        ),
    }
)

_OCI_ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def profile_for(
    platform: str,
    *,
    image_platforms: tuple[str, ...] = (),
    fpga_resource: str | None = None,
    env: Mapping[str, str] | None = None,
) -> PlatformProfile:
    """The profile of a tf2aif platform; one no recipe defines is placed by its single-arch image.

    `env` holds TF2AIF_RECIPE_PATH (default: the process environment).
    """
    arches = platform_arches(env)
    arch = arches.get(platform)
    if arch is None:
        image_arches = sorted({_OCI_ARCH.get(p, p.rpartition("/")[2]) for p in image_platforms})
        if len(image_arches) != 1:
            raise DeployError(
                f"platform {platform!r} is defined by no recipe (known: {', '.join(arches)}) and "
                f"its image is not single-arch ({', '.join(image_platforms) or 'no platforms recorded'}), "
                "so its node arch is unknown"
            )
        arch = image_arches[0]
    device = DEVICES.get(platform, Device())
    profile = PlatformProfile(
        arch=arch,
        node_labels=device.node_labels,
        device_resource=device.device_resource,
        taint_keys=device.taint_keys,
    )
    if fpga_resource and platform == "alveo":
        profile = replace(profile, device_resource=fpga_resource)
    return profile
