import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
import pytest

from contract import read_labels, read_metadata
from service.config import Settings
from service.core.dataplane import InferenceResult, ModelRef
from service.core.runtime import Runtime, RuntimeLoader
from service.core.status import VersionState
from service.errors import InvalidInput, NotFound, NotReady
from service.runtimes import default_runtimes
from tests.helpers import DEFAULT_VERSION, Core, corrupt_probes, seal, started_core
from training.train import TrainResult

Factory = Callable[..., Awaitable[Core]]


def _add_version(repo: Path, version: int, source: Path = DEFAULT_VERSION) -> Path:
    target = repo / "mnist" / str(version)
    shutil.copytree(source, target)
    return target


@pytest.fixture
async def plane_factory(default_repo: Path) -> AsyncIterator[Factory]:
    async with AsyncExitStack() as stack:

        async def make(runtimes: dict[str, RuntimeLoader] | None = None, **overrides: object) -> Core:
            settings = Settings(model_dir=default_repo, poll_interval_s=0, self_check_repeats=5, **overrides)  # type: ignore[arg-type]
            return await stack.enter_async_context(started_core(settings, runtimes))

        yield make


def _states(core: Core) -> dict[int, str]:
    return {s.version: s.state.value for s in core.plane.versions("mnist")}


async def test_start_serves_the_default_model(plane_factory: Factory) -> None:
    core = await plane_factory()
    assert core.plane.server_readiness().ready
    assert _states(core) == {1: "AVAILABLE"}


async def test_a_new_version_takes_new_requests_and_the_policy_keeps_two(
    default_repo: Path, plane_factory: Factory
) -> None:
    core = await plane_factory(versions_to_keep=2)
    for version in (2, 3):
        _add_version(default_repo, version)
    await core.manager.reload()
    assert _states(core) == {3: "AVAILABLE", 2: "AVAILABLE", 1: "END"}
    x = np.zeros((1, 784), np.float32)
    assert (await core.plane.infer(ModelRef("mnist"), x)).version == 3
    assert (await core.plane.infer(ModelRef("mnist", 2), x)).version == 2
    with pytest.raises(NotFound, match="has no version 1; available: 2, 3"):
        await core.plane.infer(ModelRef("mnist", 1), x)


async def test_a_failing_version_never_serves_and_the_last_good_one_does(
    default_repo: Path, plane_factory: Factory
) -> None:
    core = await plane_factory(versions_to_keep=1)
    corrupt_probes(_add_version(default_repo, 2))
    await core.manager.reload()
    states = {s.version: s for s in core.plane.versions("mnist")}
    assert states[2].state is VersionState.FAILED and "golden probes differ" in states[2].error
    assert states[1].state is VersionState.AVAILABLE
    assert (await core.plane.infer(ModelRef("mnist"), np.zeros((2, 784), np.float32))).version == 1
    with pytest.raises(NotFound, match="version 2 of model 'mnist' is not served: golden probes"):
        core.plane.describe(ModelRef("mnist", 2))


async def test_removing_a_version_unloads_it(default_repo: Path, plane_factory: Factory) -> None:
    core = await plane_factory()
    path = _add_version(default_repo, 2)
    await core.manager.reload()
    shutil.rmtree(path)
    await core.manager.reload()
    assert _states(core) == {2: "END", 1: "AVAILABLE"}


async def test_an_unreadable_repository_keeps_what_is_loaded(default_repo: Path, plane_factory: Factory) -> None:
    core = await plane_factory()
    default_repo.rename(default_repo.with_name("moved"))
    try:
        await core.manager.reload()
        assert "cannot read model repository" in (core.plane.catalogue().repository_error or "")
        assert (await core.plane.infer(ModelRef("mnist"), np.zeros((1, 784), np.float32))).version == 1
    finally:
        default_repo.with_name("moved").rename(default_repo)
    await core.manager.reload()
    assert core.plane.catalogue().repository_error is None


async def test_unload_and_load_a_version(default_repo: Path, plane_factory: Factory) -> None:
    core = await plane_factory()
    _add_version(default_repo, 2)
    await core.manager.reload()
    await core.manager.unload("mnist", 2)
    await core.manager.reload()  # a rescan does not bring it back
    assert (await core.plane.infer(ModelRef("mnist"), np.zeros((1, 784), np.float32))).version == 1
    await core.manager.load("mnist", 2)
    assert (await core.plane.infer(ModelRef("mnist"), np.zeros((1, 784), np.float32))).version == 2


async def test_a_hot_swap_under_load_fails_nothing_and_labels_every_answer(
    default_repo: Path,
    tiny_repo: Path,
    plane_factory: Factory,
) -> None:
    core = await plane_factory(versions_to_keep=1)
    x = np.asarray(read_metadata(DEFAULT_VERSION).probes.inputs[:3], np.float32)
    expected = {1: (await core.plane.infer(ModelRef("mnist"), x)).probabilities}
    tiny = tiny_repo / "tiny" / "1"
    answers: list[InferenceResult] = []
    swapped = asyncio.Event()

    async def client() -> None:
        after_swap = 0
        while after_swap < 5:  # keeps asking until five answers came after the swap
            answers.append(await core.plane.infer(ModelRef("mnist"), x))
            after_swap += swapped.is_set()
            await asyncio.sleep(0)

    clients = [asyncio.ensure_future(client()) for _ in range(8)]
    while len(answers) < 16:  # the swap starts while every client is busy
        await asyncio.sleep(0)
    _add_version(default_repo, 2, source=tiny)
    await core.manager.reload()
    swapped.set()
    await asyncio.gather(*clients)
    expected[2] = (await core.plane.infer(ModelRef("mnist", 2), x)).probabilities
    assert not np.array_equal(expected[1], expected[2])
    assert {a.version for a in answers} == {1, 2}
    for answer in answers:
        assert np.array_equal(answer.probabilities, expected[answer.version])
    assert _states(core) == {2: "AVAILABLE", 1: "END"}


async def test_unknown_model_names_what_exists(plane_factory: Factory) -> None:
    core = await plane_factory()
    with pytest.raises(NotFound, match="unknown model '../etc'; available: mnist"):
        core.plane.describe(ModelRef("../etc"))


async def test_a_version_that_outputs_nan_is_refused_and_the_server_keeps_serving(
    default_repo: Path,
    tiny_repo: Path,
    tiny_trained: TrainResult,
    plane_factory: Factory,
) -> None:
    import keras

    from training.export import export_savedmodel

    core = await plane_factory(versions_to_keep=1)
    broken = keras.models.clone_model(tiny_trained.model)
    broken.set_weights(tiny_trained.model.get_weights())
    broken.layers[-1].kernel.assign(np.full(broken.layers[-1].kernel.shape, np.nan))
    path = default_repo / "mnist" / "2"
    export_savedmodel(broken, path)
    seal(path, metadata_from=tiny_repo / "tiny" / "1")
    await core.manager.reload()
    states = {s.version: s for s in core.plane.versions("mnist")}
    assert states[2].state is VersionState.FAILED and "non-finite" in states[2].error
    assert (await core.plane.infer(ModelRef("mnist"), np.zeros((1, 784), np.float32))).version == 1


async def test_a_labelled_version_stays_loaded_beyond_the_newest_n(default_repo: Path, plane_factory: Factory) -> None:
    _add_version(default_repo, 2)
    core = await plane_factory(versions_to_keep=1)
    assert _states(core) == {2: "AVAILABLE"}
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 1}')
    await core.manager.reload()
    assert _states(core) == {2: "AVAILABLE", 1: "AVAILABLE"}
    x = np.zeros((1, 784), np.float32)
    assert (await core.plane.infer(ModelRef("mnist", label="stable"), x)).version == 1
    assert (await core.plane.infer(ModelRef("mnist"), x)).version == 2  # the unlabelled route stays the newest
    with pytest.raises(NotFound, match="no version label 'canary'; labels: stable"):
        await core.plane.infer(ModelRef("mnist", label="canary"), x)


class HeldLoads:
    """The real runtimes, except that loading a version's folder named in `held` waits for `release()`."""

    def __init__(self, held: set[str]) -> None:
        self._held, self._gate = held, threading.Event()
        self.runtimes = {p: self._holding(loader) for p, loader in default_runtimes(Settings()).items()}

    def _holding(self, loader: RuntimeLoader) -> RuntimeLoader:
        def load(path: Path) -> Runtime:
            if path.name in self._held:
                self._gate.wait(timeout=120)
            return loader(path)

        return load

    def release(self) -> None:
        self._gate.set()


async def _until(core: Core, state: VersionState, version: int) -> None:
    """Wait on the manager's own change events until `version` is in `state`."""
    while not any(s.version == version and s.state is state for s in core.plane.versions("mnist")):
        await asyncio.wait_for(core.plane.next_change(), timeout=120)


async def test_a_label_keeps_answering_with_its_version_until_the_new_one_is_available_here(
    default_repo: Path, plane_factory: Factory
) -> None:
    _add_version(default_repo, 2)
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 1}')
    held = HeldLoads({"3"})
    core = await plane_factory(runtimes=held.runtimes, versions_to_keep=1)
    x = np.zeros((1, 784), np.float32)
    stable, canary = ModelRef("mnist", label="stable"), ModelRef("mnist", label="canary")
    try:
        _add_version(default_repo, 3)
        # Another replica moved `stable` to 3 and added `canary`; this one has yet to load version 3.
        (default_repo / "mnist" / "labels.json").write_text('{"stable": 3, "canary": 3}')
        scan = asyncio.create_task(core.manager.reload())
        await _until(core, VersionState.LOADING, 3)
        assert (await core.plane.infer(stable, x)).version == 1
        with pytest.raises(NotReady, match="names version 3, which is LOADING; the label answers here once"):
            await core.plane.infer(canary, x)
        entry = core.plane.catalogue().models["mnist"]
        assert (entry.labels, entry.labels_served) == ({"stable": 3, "canary": 3}, {"stable": 1})
        exposition = core.metrics.render().decode()
        assert 'mnist_label_version{label="stable",model="mnist",role="wanted"} 3.0' in exposition
        assert 'mnist_label_version{label="stable",model="mnist",role="served"} 1.0' in exposition
    finally:
        held.release()
    await scan
    assert (await core.plane.infer(stable, x)).version == 3
    assert (await core.plane.infer(canary, x)).version == 3
    assert core.plane.catalogue().models["mnist"].labels_served == {"stable": 3, "canary": 3}
    assert _states(core) == {3: "AVAILABLE", 2: "END", 1: "END"}  # the old versions go once no label needs them

    # A label moved to a version that fails here keeps answering with the one it had.
    corrupt_probes(_add_version(default_repo, 4))
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 4, "canary": 3}')
    await core.manager.reload()
    assert (await core.plane.infer(stable, x)).version == 3
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 3, "canary": 3, "broken": 4}')
    await core.manager.reload()
    with pytest.raises(NotFound, match="label 'broken' of model 'mnist' names version 4, which is FAILED"):
        await core.plane.infer(ModelRef("mnist", label="broken"), x)


async def test_a_watching_server_sees_new_versions_and_label_moves_without_polling(
    default_repo: Path, plane_factory: Factory
) -> None:
    core = await plane_factory(watch_repository=True)  # and poll_interval_s=0: no polling at all
    await asyncio.wait_for(core.manager.watching(), timeout=60)
    _add_version(default_repo, 2)  # copied file by file, as by hand: a scan may catch it half-written
    await _until(core, VersionState.AVAILABLE, 2)
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 1}')
    for _ in range(3000):  # 60 s at most: seen at the watcher's next rescan, 50 ms after the write
        if core.plane.catalogue().models["mnist"].labels_served == {"stable": 1}:
            break
        await asyncio.sleep(0.02)
    assert (await core.plane.infer(ModelRef("mnist", label="stable"), np.zeros((1, 784), np.float32))).version == 1


async def test_set_label_writes_the_repository_and_refuses_a_version_that_cannot_answer(
    default_repo: Path, plane_factory: Factory
) -> None:
    corrupt_probes(_add_version(default_repo, 2))
    core = await plane_factory()
    await core.manager.set_label("mnist", "stable", 1)
    assert read_labels(default_repo / "mnist") == {"stable": 1}
    assert core.plane.catalogue().models["mnist"].labels == {"stable": 1}
    with pytest.raises(InvalidInput, match="version 2 of model 'mnist' cannot take label 'canary': which is FAILED"):
        await core.manager.set_label("mnist", "canary", 2)
    with pytest.raises(InvalidInput, match="cannot take label 'canary': which is not in the repository"):
        await core.manager.set_label("mnist", "canary", 7)
    with pytest.raises(InvalidInput, match="must be lowercase letters"):
        await core.manager.set_label("mnist", "Bad Label", 1)
    await core.manager.delete_label("mnist", "stable")
    assert read_labels(default_repo / "mnist") == {}


async def test_a_broken_labels_file_keeps_the_labels_in_force_and_says_why(
    default_repo: Path, plane_factory: Factory
) -> None:
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 1}')
    core = await plane_factory()
    (default_repo / "mnist" / "labels.json").write_text('{"stable": "one"}')
    await core.manager.reload()
    assert core.plane.catalogue().models["mnist"].labels == {"stable": 1}
    assert "is not a label and a version number" in (core.plane.catalogue().models["mnist"].label_error or "")
    assert (await core.plane.infer(ModelRef("mnist", label="stable"), np.zeros((1, 784), np.float32))).version == 1
