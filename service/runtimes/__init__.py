"""The runtimes this server can load, by the name a version's `metadata.json` gives."""

from collections.abc import Mapping

from service.config import Settings
from service.core.runtime import RuntimeLoader
from service.runtimes import tensorflow


def default_runtimes(settings: Settings) -> Mapping[str, RuntimeLoader]:
    return {
        tensorflow.PLATFORM: tensorflow.SavedModelLoader(
            intra_op_threads=settings.tf_intra_op_threads,
            inter_op_threads=settings.tf_inter_op_threads,
            log_level=settings.tf_log_level,
        )
    }
