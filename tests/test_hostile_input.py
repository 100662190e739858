"""Hostile input at the doors of `apo ingest`, `apo publish` and `apo reproduce` (the second
probe of issue 40): each case, made from a good recording or model, is refused in one line
(exit 2, no traceback), and the workdir is left as it was, every file and directory."""

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from cli_store import apo, one_line
from test_ingest import next_round, record

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.policy import ApoVlaConfig, ApoVlaPolicy, instruction_vocab

pytestmark = pytest.mark.slow  # a versioned dataset, driven through the CLI

DATA = Path("data/chunk-000/file-000.parquet")
EPISODES = Path("meta/episodes/chunk-000/file-000.parquet")


@pytest.fixture(scope="module")
def workdir(small_round_dirs, tmp_path_factory):
    """A workdir with dataset round 0 (the demos), and a good recording and model beside it."""
    root = tmp_path_factory.mktemp("hostile")
    config = root / "config.yaml"
    config.write_text(f"paths: {{workdir: '{root / 'work'}'}}\n")
    demos = shutil.copytree(small_round_dirs[0], root / "work" / "episodes" / "expert" / "push")
    built = apo("--config", str(config), "dataset", "build", "0", "--data", str(demos))
    assert built.returncode == 0, built.stderr[-2000:]
    torch.manual_seed(0)
    policy = ApoVlaPolicy(ApoVlaConfig(instruction_vocab=instruction_vocab(["push the puck to the goal"])),
                          ActionTokenizer.fit(np.random.default_rng(0).normal(size=(50, 4))))
    policy.save_pretrained(root / "model")
    return {"base": ["--config", str(config)], "work": root / "work", "root": root, "model": root / "model",
            "recording": record(root / "recording", intervention="intervention")}


def snapshot(root: Path) -> dict[str, str]:
    """Every directory and file under ``root``, a file by its sha256: 'nothing changed' made checkable."""
    return {str(path.relative_to(root)): "directory" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))}


def refused(workdir, *command: str, expected: tuple[str, ...]) -> None:
    """The command is refused in one line naming ``expected``, and the workdir is unchanged."""
    before = snapshot(workdir["work"])
    one_line(apo(*workdir["base"], *command), *expected)
    assert snapshot(workdir["work"]) == before


def edit(root: Path, change, file: Path = DATA) -> None:
    """Rewrite one parquet file of the recording at ``root``: ``change(table) -> table``."""
    pq.write_table(change(pq.read_table(root / file)), root / file)


def replaced(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


def as_text(name: str, words: tuple[str, str]):
    """A boolean column stored as the words for no and yes."""
    return lambda table: replaced(table, name, pa.array([words[v] for v in table.column(name).to_pylist()]))


def one_index(table: pa.Table) -> pa.Table:
    """Both episodes filed under episode_index 0."""
    return replaced(table, "episode_index", pa.array(np.zeros(table.num_rows, dtype=np.int64)))


def backwards(table: pa.Table) -> pa.Table:
    """Episode 0's frames stored last to first, each frame whole (its frame_index with it)."""
    first = int(np.sum(table.column("episode_index").to_numpy() == 0))
    return pa.concat_tables([table.slice(0, first).take(pa.array(np.arange(first)[::-1])), table.slice(first)])


def huge_action(table: pa.Table) -> pa.Table:
    """One action of 3e38 (finite in float32), at episode 1's frame 3."""
    actions = np.stack(table.column("action").to_pylist()).astype(np.float32)
    actions[12 + 3, 0] = 3e38
    return replaced(table, "action", pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), 4))


def small_images(table: pa.Table) -> pa.Table:
    """Every frame a 32x32 PNG, where info.json declares 64x64."""
    from PIL import Image

    frames = []
    for row in table.column("observation.image").to_pylist():
        out = io.BytesIO()
        Image.open(io.BytesIO(row["bytes"])).resize((32, 32)).save(out, format="PNG")
        frames.append({"bytes": out.getvalue(), "path": row["path"]})
    return replaced(table, "observation.image", pa.array(frames, type=table.schema.field("observation.image").type))


def truncate(root: Path) -> None:
    data = (root / DATA).read_bytes()
    (root / DATA).write_bytes(data[: len(data) // 2])


def lengths(table: pa.Table) -> pa.Table:
    """meta/episodes says 10 and 14 frames where the data holds 12 and 12."""
    return replaced(table, "length", pa.array([10, 14], type=table.schema.field("length").type))


HOSTILE_RECORDINGS = {
    "success-as-text": (lambda r: edit(r, as_text("next.success", ("False", "True"))),
                        ("'next.success'", "holds string values ('False', 'True')", "declares bool")),
    "intervention-as-text": (lambda r: edit(r, as_text("intervention", ("no", "yes"))),
                             ("'intervention'", "holds string values ('no', 'yes')", "declares bool")),
    "two-episodes-one-index": (lambda r: edit(r, one_index),
                               (str(DATA), "row 12", "frame_index starts again at 0", "two episodes under one")),
    "frames-backwards": (lambda r: edit(r, backwards), (str(DATA), "row 0", "frame_index 11, expected 0", "in order")),
    "action-3e38": (lambda r: edit(r, huge_action), ("episode 1", "'action'", "3e+38 at frame 3", "[-1, 1]")),
    "feature-missing": (lambda r: edit(r, lambda t: t.drop_columns(["observation.state"])),
                        (str(DATA), "'observation.state'", "declared in meta/info.json but is not a column")),
    "truncated-parquet": (truncate, (str(DATA), "not a readable parquet file", "truncated or corrupt")),
    "images-32x32": (lambda r: edit(r, small_images), ("episode 0", "'observation.image'", "32x32", "[64, 64, 3]")),
    "episode-lengths": (lambda r: edit(r, lengths, EPISODES), ("meta/episodes", "episode 0: length 10",
                                                               "the data holds 12 frames")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_RECORDINGS))
def test_a_hostile_recording_is_refused_in_one_line_and_nothing_is_written(workdir, tmp_path, case):
    damage, expected = HOSTILE_RECORDINGS[case]
    recording = shutil.copytree(workdir["recording"], tmp_path / "recording")
    damage(recording)
    refused(workdir, "ingest", str(recording), "--round", next_round(workdir["work"]), "--robot", "probe",
            expected=expected)


def test_a_copy_of_the_dataset_s_own_data_is_refused(workdir, tmp_path):
    copy = shutil.copytree(workdir["work"] / "workspace" / "datasets", tmp_path / "round-0-again")
    refused(workdir, "ingest", str(copy), "--round", next_round(workdir["work"]), "--robot", "probe",
            expected=(f"{copy} episode 0", "episode_sha256", "already in the dataset"))


def test_the_good_recording_passes_the_same_doors(workdir, tmp_path):
    """The cases above are refused for what was done to them: the recording they were made
    from is taken in (and with it the round's dataset built)."""
    recording = shutil.copytree(workdir["recording"], tmp_path / "recording")
    round_number = next_round(workdir["work"])
    taken = apo(*workdir["base"], "ingest", str(recording), "--round", round_number, "--robot", "good-arm")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert "2 recorded episodes" in taken.stdout
    refused(workdir, "ingest", str(recording), "--round", round_number, "--robot", "good-arm",
            expected=(f"--round {round_number}", f"the next dataset round is {int(round_number) + 1}"))


def test_a_dataset_build_that_fails_after_the_episodes_were_written_removes_them(small_round_dirs, workdir,
                                                                                  tmp_path):
    """What can still fail after the door: versioning the round (here its DVC remote cannot
    be written). The episodes written for it go again, and every directory the ingest made."""
    work = tmp_path / "work"
    good, broken = tmp_path / "good.yaml", tmp_path / "broken.yaml"
    good.write_text(f"paths: {{workdir: '{work}'}}\n")
    broken.write_text(f"dataset: {{remote: '/proc/apo-remote'}}\npaths: {{workdir: '{work}'}}\n")
    demos = shutil.copytree(small_round_dirs[0], work / "episodes" / "expert" / "push")
    built = apo("--config", str(good), "dataset", "build", "0", "--data", str(demos))
    assert built.returncode == 0, built.stderr[-2000:]
    before = snapshot(work / "episodes")
    failed = apo("--config", str(broken), "ingest", str(workdir["recording"]), "--round", "1", "--robot", "probe")
    one_line(failed, "dvc push")
    assert snapshot(work / "episodes") == before


@pytest.mark.parametrize("link", ["config.json", "notes.txt"])
def test_publish_refuses_a_link_out_of_the_model_directory(workdir, tmp_path, link):
    model = shutil.copytree(workdir["model"], tmp_path / "model")
    (model / link).unlink(missing_ok=True)
    (model / link).symlink_to("/etc/passwd")
    refused(workdir, "publish", "3", "--model", str(model), "--method", "bc",
            expected=(str(model / link), "a symbolic link (to /etc/passwd)", "regular files only"))


def test_publish_refuses_a_subdirectory_the_store_would_leave_out(workdir, tmp_path):
    model = shutil.copytree(workdir["model"], tmp_path / "model")
    (model / "checkpoints").mkdir()
    (model / "checkpoints" / "step-2.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    refused(workdir, "publish", "3", "--model", str(model), "--method", "bc",
            expected=(str(model / "checkpoints"), "a subdirectory", "would leave it out"))


def test_publish_refuses_a_parent_round_that_is_not_stored(workdir):
    refused(workdir, "publish", "3", "--model", str(workdir["model"]), "--method", "apo", "--parent", "99",
            expected=("parent round 99", "not a round of", "apo rounds"))


def test_reproduce_of_a_round_without_a_dataset_version_is_one_line(workdir):
    published = apo(*workdir["base"], "publish", "7", "--model", str(workdir["model"]), "--method", "bc")
    assert published.returncode == 0, published.stderr[-2000:]
    manifest = json.loads((workdir["work"] / "model-store" / "rounds" / "0007" / "manifest.json").read_text())
    assert manifest["dataset"] == {}  # no dataset round 7 was versioned
    refused(workdir, "reproduce", "7", expected=("rounds/0007/manifest.json", "round 7 has no dataset version to "
                                                 "retrain from", "git_tag, md5, git_commit"))
