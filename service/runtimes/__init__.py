"""The runtimes this server can load, by the name a version's `metadata.json` gives, and the faster
runtimes it may offer each loaded version to (`MNIST_RUNTIME=auto`)."""

from collections.abc import Mapping, Sequence

from contract.litert import Precision
from service.config import Settings
from service.core.model import Accelerator
from service.core.runtime import RuntimeLoader
from service.runtimes import litert, tensorflow


def default_runtimes(settings: Settings) -> Mapping[str, RuntimeLoader]:
    return {
        tensorflow.PLATFORM: tensorflow.SavedModelLoader(
            intra_op_threads=settings.tf_intra_op_threads,
            inter_op_threads=settings.tf_inter_op_threads,
            log_level=settings.tf_log_level,
        )
    }


def default_accelerators(settings: Settings) -> Sequence[Accelerator]:
    """In the order they are offered each version: int8 after fp32, so that it must beat LiteRT's own fp32."""
    precisions: dict[str, tuple[Precision, ...]] = {
        "savedmodel": (),
        "litert": ("fp32",),
        "litert-int8": ("fp32", "int8"),
        "auto": ("fp32", "int8"),
    }
    by_speed = settings.runtime == "auto"
    return tuple(
        litert.LiteRtConverter(threads=settings.tf_intra_op_threads, by_speed=by_speed, precision=precision)
        for precision in precisions[settings.runtime]
    )
