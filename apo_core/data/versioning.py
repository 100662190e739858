"""Dataset versions with git + DVC: one commit and one tag per round, pushed to a remote.

The workspace is a git repository with DVC. For round N:

    dvc add datasets  ->  datasets.dvc (md5 of the whole directory)  ->  git commit
    ->  git tag dataset-round-NNNN  ->  dvc push  ->  check the remote holds the .dir manifest

(DVC can report "up to date" without uploading an old revision's ``.dir`` manifest, so
every round is pushed right after it is added, and the manifest is then looked up on the
remote.) The remote is a local directory by default or S3 through dvc-s3 (any endpoint).
Credentials never enter git: a key pair given inside the remote or endpoint URL is taken out
of it, the URL committed in ``.dvc/config`` is the one without, and the pair goes to
``.dvc/config.local`` (git-ignored); without one, DVC uses the usual AWS variables.
The cache gives the workspace reflinks where the file system has them, else copies (never
hard links: an edit in the workspace would change the cached version). A round's dataset is
restored by apo_core/data/restore.py, verified and all or nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from apo_core.errors import ApoError, mask_credentials, split_credentials
from apo_core.workdir import parse_round_name, round_name

DATASET_DIR = "datasets"
DVC_FILE = "datasets.dvc"
REMOTE_NAME = "storage"


class VersioningError(ApoError):
    """A git or DVC step failed; the message carries the command and its error output."""


TAG_PREFIX = "dataset-"


def tag_for(round_number: int) -> str:
    """``dataset-round-0003``: the git tag of dataset round N."""
    return f"{TAG_PREFIX}{round_name(round_number)}"


def tagged_round(tag: str) -> int:
    """The N of a dataset tag; a name that is not one is an error naming it."""
    number = parse_round_name(tag.removeprefix(TAG_PREFIX)) if tag.startswith(TAG_PREFIX) else None
    if number is None:
        raise VersioningError(f"{tag!r} is not a dataset tag (expected {tag_for(0)!r} and the like)")
    return number


@dataclass(frozen=True)
class DatasetVersion:
    round: int
    md5: str
    commit: str
    tag: str


@dataclass(frozen=True)
class Remote:
    """Where DVC pushes: a local directory or ``s3://bucket/prefix`` (+ endpoint).

    A key pair given inside either URL (``http://KEY:SECRET@host:9000``) is taken out of it
    here: ``url`` and ``endpoint_url`` are what may be committed or printed, the pair is
    kept apart (and out of ``repr``) for ``.dvc/config.local`` and boto3.
    """

    url: str
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    def __post_init__(self):
        pairs = set()
        for name, key in (("url", "dataset.remote"), ("endpoint_url", "dataset.s3_endpoint_url")):
            given = getattr(self, name)
            plain, key_id, secret = split_credentials(given)
            if key_id is None:
                continue
            if not secret:
                raise VersioningError(f"{key}: {mask_credentials(given)}: credentials in a URL are KEY:SECRET@ "
                                      f"(an S3 access key and its secret); or leave them out and set "
                                      f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
            object.__setattr__(self, name, plain)
            pairs.add((key_id, secret))
        if len(pairs) > 1:
            raise VersioningError("dataset.remote and dataset.s3_endpoint_url carry different credentials; give "
                                  "them in one of the two")
        if pairs and self.access_key_id is None:
            (key_id, secret), = pairs
            object.__setattr__(self, "access_key_id", key_id)
            object.__setattr__(self, "secret_access_key", secret)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def manifest_exists(self, md5_dir: str) -> bool:
        """Whether the remote holds the ``.dir`` manifest of a version (DVC 3 layout)."""
        key = f"files/md5/{md5_dir[:2]}/{md5_dir[2:]}"
        if not self.is_s3:
            return (Path(self.url) / key).exists()
        import boto3
        from botocore.exceptions import ClientError

        bucket, _, prefix = self.url.removeprefix("s3://").partition("/")
        client = boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key_id,
                              aws_secret_access_key=self.secret_access_key)
        try:
            client.head_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{key}".lstrip("/"))
        except ClientError:
            return False
        return True


def _shown(command: tuple[str, ...]) -> str:
    words = ["dvc" if word == "dvc" else word for word in command if word not in (sys.executable, "-m", "-q")]
    return " ".join(words[:3])


def cause_line(result: subprocess.CompletedProcess) -> str:
    """The line that says why: DVC's ``ERROR:`` lines (not its support footer), else the last
    ones (a ``WARNING:`` of a command that exited 0, say), masked."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith(("ERROR", "fatal:", "error:"))]
    chosen = errors or [line for line in lines if "dvc.org/support" not in line and "Having any troubles" not in line]
    return mask_credentials(" ".join(chosen[-2:])) or f"exit code {result.returncode}"


REMOTE_COMMANDS = ("push", "pull", "fetch")


def _hint(command: tuple[str, ...]) -> str:
    if any(word in REMOTE_COMMANDS for word in command):
        return " (check dataset.remote, its credentials and dataset.s3_endpoint_url)"
    if "git" == command[0]:
        return " (check that the workspace is a writable git repository)"
    return ""


class DatasetWorkspace:
    """A git + DVC workspace whose ``datasets/`` directory is versioned round by round."""

    def __init__(self, root: str | Path, remote: Remote):
        self.root = Path(root).resolve()
        self.remote = remote

    @property
    def dataset_root(self) -> Path:
        return self.root / DATASET_DIR

    # ----- plumbing -----------------------------------------------------------------
    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        except OSError as error:  # a missing or unreadable workspace, or no git on PATH
            raise VersioningError(f"{self.root}: cannot run `{command[0]}`: {error.strerror or error}") from None
        if check and result.returncode != 0:
            remote = f" with the remote {self.remote.url}" if any(w in REMOTE_COMMANDS for w in command) else ""
            raise VersioningError(mask_credentials(f"{self.root}: `{_shown(command)}`{remote} failed: "
                                                   f"{cause_line(result)}{_hint(command)}"))
        return result

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run("git", *args, check=check)

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A DVC command, never with ``-q``: quiet, DVC prints not even its ERROR lines, and a
        failure could only say "exit code 1" instead of which object and why."""
        return self._run(sys.executable, "-m", "dvc", *args, check=check)

    # ----- set-up -------------------------------------------------------------------
    def ensure(self) -> DatasetWorkspace:
        """Create the git repo, DVC and the remote config if missing (idempotent)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise VersioningError(f"{self.root}: cannot create the dataset workspace: {error.strerror} "
                                  f"(check dataset.workspace)") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise VersioningError(f"{self.root}: the dataset workspace is not writable (check its permissions)")
        if not (self.root / ".git").exists():
            self.git("init", "-q", "-b", "main")
        if not self.git("config", "user.email", check=False).stdout.strip():
            self.git("config", "user.email", "apo-pipeline@localhost")
            self.git("config", "user.name", "apo pipeline")
        if not (self.root / ".dvc").exists():
            self.dvc("init")
            self.dvc("config", "core.analytics", "false")
            self.dvc("config", "core.autostage", "true")
            # never a hard link: an edit in datasets/ would change the cached version too
            self.dvc("config", "cache.type", "reflink,copy")
        self.dvc("remote", "add", "-d", "-f", REMOTE_NAME, self._remote_in_config())
        if self.remote.is_s3 and self.remote.endpoint_url:
            self.dvc("remote", "modify", REMOTE_NAME, "endpointurl", self.remote.endpoint_url)
        self.write_credentials()
        self.git("add", ".dvc")
        if self.git("status", "--porcelain", "--", ".dvc").stdout.strip():
            self.git("commit", "-q", "-m", "Set up DVC for the dataset")
        return self

    def write_credentials(self) -> None:
        """The remote's key pair, when its URL carried one, into ``.dvc/config.local`` (mode
        0600), which DVC reads over ``.dvc/config`` and git ignores; written in this process,
        so the secret is on no command line. Without a pair the file is left as it is."""
        if self.remote.access_key_id is None:
            return
        local = self.root / ".dvc" / "config.local"
        if self.git("check-ignore", "-q", ".dvc/config.local", check=False).returncode != 0:
            raise VersioningError(f"{local}: git does not ignore it, so the remote's credentials would be committed; "
                                  f"add /config.local to {local.parent / '.gitignore'}")
        from dvc.config import Config
        from dvc.config import ConfigError as DvcConfigError

        os.close(os.open(local, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(local, 0o600)
        try:
            with Config(dvc_dir=str(local.parent)).edit("local") as conf:
                conf["remote"].setdefault(REMOTE_NAME, {}).update(
                    access_key_id=self.remote.access_key_id, secret_access_key=self.remote.secret_access_key)
        except DvcConfigError as error:
            raise VersioningError(mask_credentials(f"{local}: cannot write the remote's credentials: {error}")) from None

    def _remote_in_config(self) -> str:
        """The remote as given to `dvc remote add`: a local one relative to the workspace (DVC
        stores it relative to its config; a workspace that moves with its remote keeps
        working). DVC writes its config as ASCII and leaves it empty when it cannot: any
        other path is refused before DVC runs."""
        url = self.remote.url
        if not self.remote.is_s3:
            url = os.path.relpath(url, self.root)
        if not url.isascii():
            raise VersioningError(f"dataset.remote: {self.remote.url}: DVC cannot store a remote path with "
                                  f"non-ASCII characters in its config; use an ASCII path for the remote")
        return url

    def prepare_append(self) -> None:
        """Give lerobot private copies of the metadata files it rewrites in place.

        Linked from the DVC cache, an in-place rewrite would corrupt the cached version.
        """
        meta = self.dataset_root / "meta"
        for path in meta.rglob("*") if meta.exists() else []:
            if path.is_file() and (path.is_symlink() or path.stat().st_nlink > 1):
                private = path.with_name(path.name + ".copy")
                shutil.copyfile(path, private)
                os.replace(private, path)

    # ----- versions -----------------------------------------------------------------
    def commit_round(self, round_number: int) -> DatasetVersion:
        """dvc add, git commit + tag, dvc push, verify the remote. Idempotent per round."""
        from apo_core.data.dataset import validate_dataset

        tag = tag_for(round_number)
        if self.git("rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).returncode == 0:
            version = self.version(round_number)
            self._push_and_verify(version)
            return version
        validate_dataset(self.dataset_root)  # a corrupt shard never becomes a version
        self.dvc("add", DATASET_DIR)
        self.git("add", DVC_FILE, ".gitignore")
        self.git("commit", "-q", "--allow-empty", "-m", f"Dataset for round {round_number}")
        self.git("tag", tag)
        version = self.version(round_number)
        self._push_and_verify(version)
        return version

    def _push_and_verify(self, version: DatasetVersion) -> None:
        self.dvc("push", DVC_FILE)
        if not self.remote.manifest_exists(version.md5):
            raise VersioningError(f"{self.remote.url}: pushed, but the manifest {version.md5} is not on the remote")

    def version(self, round_number: int) -> DatasetVersion:
        tag = tag_for(round_number)
        found = self.git("rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
        if found.returncode != 0:
            raise VersioningError(f"{self.root}: no dataset version for round {round_number} (tag {tag})")
        content = yaml.safe_load(self.git("show", f"{tag}:{DVC_FILE}").stdout)
        return DatasetVersion(round_number, content["outs"][0]["md5"], found.stdout.strip(), tag)

    def versions(self) -> list[DatasetVersion]:
        tags = self.git("tag", "--list", tag_for(0).replace("0000", "*")).stdout.split()
        return [self.version(tagged_round(tag)) for tag in sorted(tags)]

    def current_md5(self) -> str | None:
        path = self.root / DVC_FILE
        return yaml.safe_load(path.read_text())["outs"][0]["md5"] if path.exists() else None

    def restore_head(self) -> None:
        """Undo a half-written append: put ``datasets/`` back to the last committed version."""
        if self.git("rev-parse", "-q", "--verify", "HEAD", check=False).returncode != 0:
            return
        if self.git("cat-file", "-e", f"HEAD:{DVC_FILE}", check=False).returncode != 0:
            shutil.rmtree(self.dataset_root, ignore_errors=True)
            return
        self.git("checkout", "HEAD", "--", DVC_FILE)
        self.dvc("checkout", "--force", DVC_FILE)
