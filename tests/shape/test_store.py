"""Characters in aria_data and batches on aria_queue's ai_generation queue, on a real node."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client import REGISTRY

import aria
from aria.apps.queue.api import FINISHED, Job, Snooze
from aria.apps.shape.api import BatchNotFound, CharacterNotFound, ModelUnavailable, ShapeApi
from aria.apps.shape.checkpoints import CONTENT_TYPE
from aria.apps.shape.rules import validate
from aria.apps.shape.service import ShapeService
from aria.apps.shape.settings import ShapeSection
from tests.shape.conftest import needs_xgrammar, node_config

pytestmark = needs_xgrammar
WAIT = 120
ROOT = Path(__file__).resolve().parents[2]


async def shape_api() -> ShapeApi:
    found: ShapeApi = await aria.whereis("aria_shape").get()
    return found


async def job_when_finished(job_id: str) -> Job:
    """The job once the queue has recorded its outcome (acks follow the worker's return)."""
    queue = aria.whereis("aria_queue")
    with trio.fail_after(WAIT):
        while (job := await queue.get_job(job_id)).state not in FINISHED:  # noqa: ASYNC110 - a row, polled
            await trio.sleep(0.05)
    return job


class TestStoredCharacters:
    async def test_a_queued_batch_is_stored_and_the_same_seed_and_model_give_the_same_characters(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        config = node_config(node_dir, tiny_model_dir, batch_size=2)
        async with aria.running(apps=["aria_shape"], config=config):
            shape = await shape_api()
            request = {"prompt": "a grim orc", "constraints": {"species": "orc"}, "n": 3, "seed": 7}
            queued = await shape.submit(**request, requested_by="tests")
            assert (queued["state"], queued["kind"], queued["done"], queued["seed"]) == (
                "queued",
                "queued",
                0,
                7,
            )
            with trio.fail_after(WAIT):
                batch = await shape.wait_for_batch(queued["id"])
            assert batch["state"] == "completed" and batch["done"] == 3 and batch["error"] is None
            assert batch["model"].startswith("tiny@") and batch["parameters"]["batch_size"] == 2
            assert batch["requested_by"] == "tests" and batch["runs"] == 1
            job = await job_when_finished(batch["job_id"])
            assert (job.state, job.queue, job.worker) == ("completed", "ai_generation", "shape.generate")

            stored = await shape.results(batch["id"])
            assert [s["meta"]["index"] for s in stored] == [0, 1, 2]
            for sheet in stored:
                meta = sheet["meta"]
                assert meta["seed"] == 7 and meta["model"] == batch["model"] and meta["batch"] == batch["id"]
                assert meta["parameters"] == batch["parameters"] and meta["prompt"] == "a grim orc"
                assert sheet["character"]["species"] == "orc" and validate(sheet["character"]) == []
                assert await shape.character(sheet["id"]) == sheet

            # The same request again, queued: the same characters, stored anew.
            again = await shape.submit(**request)
            with trio.fail_after(WAIT):
                await shape.wait_for_batch(again["id"])
            repeated = await shape.results(again["id"])
            assert [s["character"] for s in repeated] == [s["character"] for s in stored]
            assert {s["id"] for s in repeated}.isdisjoint(s["id"] for s in stored)
            # From one stored record alone: the same character again.
            remade = await shape.reproduce(stored[2]["id"])
            assert remade.character == stored[2]["character"] and remade.id is None
            other = await shape.generate(**{**request, "seed": 8}, store=False)
            assert [c.character for c in other] != [s["character"] for s in stored]

    async def test_direct_generation_is_stored_with_how_it_was_made(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        async with aria.running(apps=["aria_shape"], config=node_config(node_dir, tiny_model_dir)):
            shape = await shape_api()
            made = await shape.generate(n=2, seed=3, requested_by="tests")
            assert all(c.id is not None and c.batch == made[0].batch for c in made)
            batch = await shape.batch(made[0].batch)
            assert (batch["kind"], batch["state"], batch["done"], batch["n"]) == ("direct", "completed", 2, 2)
            assert batch["stats"]["characters"] == 2 and batch["model"] == made[0].model
            record = await shape.character(made[1].id)
            assert record == {
                "id": made[1].id,
                "character": made[1].character,
                "meta": {**made[1].to_dict()["meta"], "created_at": record["meta"]["created_at"]},
            }
            assert (await shape.reproduce(made[1].id)).character == made[1].character
            # A page of a batch's characters.
            assert [s["id"] for s in await shape.results(batch["id"], limit=1, offset=1)] == [made[1].id]

    async def test_bad_requests_are_refused_before_anything_is_stored(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        async with aria.running(apps=["aria_shape"], config=node_config(node_dir, tiny_model_dir)):
            shape = await shape_api()
            db = aria.whereis("aria_data")
            with pytest.raises(ValueError, match=r"n must be 1\.\.10000, not 0"):
                await shape.submit(n=0)
            with pytest.raises(ValueError, match=r"seed must be 0\.\.9223372036854775807, not -1"):
                await shape.submit(seed=-1)
            with pytest.raises(ValueError, match="constraint species='dragon' is impossible"):
                await shape.submit(constraints={"species": "dragon"})
            with pytest.raises(ValueError, match="priority must be an integer from 0 to 9, not 10"):
                await shape.submit(priority=10)
            with pytest.raises(ValueError, match="prompt has 201 characters; at most 200"):
                await shape.generate(prompt="x" * 201)
            with pytest.raises(TypeError, match="n must be an int, not str"):
                await shape.generate(n="3")  # type: ignore[arg-type]
            assert await db.fetchval("SELECT count(*) FROM aria_shape_batches") == 0
            assert await db.fetchval("SELECT count(*) FROM aria_jobs WHERE worker = 'shape.generate'") == 0
            with pytest.raises(BatchNotFound, match="batch id 'nope' is not a UUID"):
                await shape.batch("nope")
            with pytest.raises(BatchNotFound, match=f"no batch {uuid.UUID(int=1)}"):
                await shape.results(str(uuid.UUID(int=1)))
            with pytest.raises(CharacterNotFound, match=f"no character {uuid.UUID(int=2)}"):
                await shape.character(str(uuid.UUID(int=2)))

            # A node whose default model is untrained queues nothing and never trains in a job.
            untrained = ShapeApi(
                ShapeService(ShapeSection(), node_dir / "untrained"),
                database=shape.database,
                queue=shape.queue,
            )
            with pytest.raises(ModelUnavailable, match="run `aria shape train-base`"):
                await untrained.submit(n=1)
            shape.queue.pause("ai_generation")  # the job is run by hand below
            queued = await shape.submit(n=1, seed=1)
            result = await untrained.run_batch(queued["id"])
            assert isinstance(result, Snooze) and result.seconds > 0
            assert (await shape.batch(queued["id"]))["state"] == "queued"

    async def test_a_batch_that_cannot_succeed_fails_once_naming_the_broken_rule(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        config = node_config(node_dir, tiny_model_dir, on_rule_violation="regenerate", max_attempts=1)
        async with aria.running(apps=["aria_shape"], config=config):
            shape = await shape_api()
            # A 20-year-old elf breaks age.species_range whatever the model writes.
            queued = await shape.submit(constraints={"species": "elf", "age": 20}, n=2, seed=3)
            with trio.fail_after(WAIT):
                batch = await shape.wait_for_batch(queued["id"])
            assert batch["state"] == "failed" and batch["done"] == 0
            assert "age.species_range at age: elf age must be 100..750, not 20" in batch["error"]
            job = await job_when_finished(batch["job_id"])
            assert job.state == "discarded" and job.attempt == 1  # retrying cannot help: not retried


class TestCatalogedCheckpoints:
    async def test_checkpoints_go_to_the_asset_catalogue_and_a_run_resumes_from_there(
        self, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        config = node_config(
            node_dir,
            tiny_model_dir,
            grpo_group_size=2,
            grpo_prompts_per_step=1,
            grpo_max_new_tokens=12,
            grpo_checkpoint_every=1,
        )
        async with aria.running(apps=["aria_shape"], config=config):
            shape = await shape_api()
            storage = aria.whereis("aria_storage")
            with pytest.raises(ValueError, match="unknown reward 'style'"):
                await shape.start_training("style", steps=2)
            run = await shape.start_training("validity,rules,plannable", steps=3, run="cat-run")
            with pytest.raises(ValueError, match="training run 'cat-run' is running already"):
                await shape.start_training("validity,rules,plannable", steps=3, run="cat-run")
            with trio.fail_after(WAIT):
                status = await shape.wait_for_training(run)
            assert status["done_steps"] == 3 and status["checkpoints"] == [2, 3]
            assert status["model"].endswith("cat-run/model")
            assert shape.status()["training"]["cat-run"]["state"] == "done"
            # Progress and the reward curve reached the process's Prometheus registry (aria_monitor's).
            curve = await shape.reward_curve(run)
            sample = REGISTRY.get_sample_value
            labels = {"run": "cat-run"}
            assert sample("aria_shape_training_step", labels) == 3
            assert sample("aria_shape_training_steps_target", labels) == 3
            assert sample("aria_shape_training_reward", {**labels, "reward": "total"}) == curve[-1]["reward"]
            for name, value in curve[-1]["rewards"].items():
                assert sample("aria_shape_training_reward", {**labels, "reward": name}) == value
            assert set(curve[-1]["rewards"]) == {"validity", "rules", "plannable"}
            assert sample("aria_shape_training_kl", labels) == curve[-1]["kl"]
            assert sample("aria_shape_training_starts_total", {**labels, "kind": "fresh"}) == 1
            assert sample("aria_shape_training_checkpoints_total", labels) == 3
            assert sample("aria_shape_training_running", labels) == 0
            assets = await storage.list_assets("shape-grpo-cat-run")
            assert sorted(int(a["version"]) for a in assets) == [2, 3]  # the newest two, like the run's
            assert {a["content_type"] for a in assets} == {CONTENT_TYPE}

            # The run's directory is lost (another node, a wiped disk): it resumes from the catalogue.
            shutil.rmtree(node_dir / "shape" / "runs" / "cat-run" / "checkpoints")
            run = await shape.start_training("validity,rules,plannable", steps=5, run="cat-run")
            with trio.fail_after(WAIT):
                status = await shape.wait_for_training(run)
            assert shape.status()["training"]["cat-run"]["resumed_from"] == 3
            assert sample("aria_shape_training_starts_total", {**labels, "kind": "resumed"}) == 1
            assert sample("aria_shape_training_step", labels) == 5
            assert status["done_steps"] == 5 and status["checkpoints"] == [4, 5]
            assets = await storage.list_assets("shape-grpo-cat-run")
            assert sorted(int(a["version"]) for a in assets) == [4, 5]
            assert [m["step"] for m in await shape.reward_curve(run)] == [1, 2, 3, 4, 5]


class SecondNode:
    """Another Aria process running aria_shape on this node's database (see node_process.py),
    from a copy of the template node (whose aria_security holds the database's password)."""

    def __init__(self, template: Path, data_dir: Path) -> None:
        self.template = template
        self.base = Path(f"{data_dir}-second")
        self.process: subprocess.Popen[str] | None = None

    async def start(self, shape: dict[str, Any]) -> None:
        await trio.run_process(["cp", "-a", str(self.template), str(self.base)])
        address = aria.whereis("aria_data").status()["address"]
        args = [
            sys.executable,
            "-m",
            "tests.shape.node_process",
            str(self.base),
            f"postgresql://aria@{address}/aria",
            json.dumps(shape),
        ]
        # A plain Popen: the child lives across awaits and is read from a worker thread.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        with trio.fail_after(WAIT):
            line = await trio.to_thread.run_sync(self.process.stdout.readline)
        assert line.strip() == "ready"

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no clean-up, no goodbye to the queue
        await trio.to_thread.run_sync(self.process.wait)

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()


class TestQueueRescue:
    async def test_a_batch_survives_kill_9_of_the_process_generating_it(
        self, node_template: Path, node_dir: Path, tiny_model_dir: Path
    ) -> None:
        settings = {"model": str(tiny_model_dir), "device": "cpu", "batch_size": 2}
        config = node_config(node_dir, **settings)
        config["queue"]["node_timeout"] = 4.0  # as the second process's (see node_process.py)
        async with aria.running(apps=["aria_shape"], config=config):
            shape = await shape_api()
            shape.queue.pause("ai_generation")  # the job must start in the second process
            second = SecondNode(node_template, node_dir)
            try:
                await second.start(settings)
                queued = await shape.submit(prompt="a wary gnome", n=6, seed=21)
                # Once the second process has stored its first chunk (of three), kill it mid-batch.
                with trio.fail_after(WAIT):
                    while (await shape.batch(queued["id"]))["done"] == 0:  # noqa: ASYNC110 - rows of another process
                        await trio.sleep(0.05)
                await second.kill()
            finally:
                second.close()
            midway = await shape.batch(queued["id"])
            assert midway["state"] == "running" and 0 < midway["done"] < 6
            job = await aria.whereis("aria_queue").get_job(queued["job_id"])
            assert job.state == "executing" and job.attempted_by.startswith("second/")

            # This node's lifeline rescues the job of the silent process; the batch continues here.
            shape.queue.resume("ai_generation")
            with trio.fail_after(WAIT):
                batch = await shape.wait_for_batch(queued["id"])
            job = await job_when_finished(queued["job_id"])
            assert batch["state"] == "completed" and batch["done"] == 6 and batch["runs"] == 2
            assert job.state == "completed" and job.attempt == 2, [e["error"] for e in job.errors]
            assert "stopped its heartbeat" in job.errors[-1]["error"]
            before = batch["stats"]["stored_before"]
            assert before >= midway["done"] and batch["stats"]["resumed_chunks"] == before // 2
            stored = await shape.results(queued["id"])
            assert [s["meta"]["index"] for s in stored] == list(range(6))
            # Made by two processes, they are what one process makes from the same records.
            for made_there_or_here in (stored[0], stored[-1]):
                again = await shape.reproduce(made_there_or_here["id"])
                assert again.character == made_there_or_here["character"]
