"""The runtimes this server can load, by the name a version's `metadata.json` gives, and the faster
runtimes it may offer each loaded version to (`MNIST_RUNTIME=auto`)."""

from collections.abc import Mapping, Sequence

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
    if settings.runtime == "savedmodel":
        return ()
    return (litert.LiteRtConverter(threads=settings.tf_intra_op_threads, by_speed=settings.runtime == "auto"),)
