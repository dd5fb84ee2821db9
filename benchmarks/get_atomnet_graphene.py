"""Fetch AtomNet's public low-dose graphene scans (github pycroscopy/AICrystallographer, ``AtomNet/exp_data``).

    python benchmarks/get_atomnet_graphene.py                      # download from GitHub
    python benchmarks/get_atomnet_graphene.py --from-git CLONE     # copy from a clone's .git (or a bare mirror)

The files (60 kV Nion UltraSTEM MAADF scans of graphene with grain boundaries and Si dopants, with AtomNet's own
detections in ``*-coord.npy``) are public but the repository carries no licence, so motifgram does not
redistribute them: this script puts them in ``benchmarks/data/atomnet-graphene`` (ignored by git), where
``benchmarks/real_low_dose.py`` and ``specs/low_dose_graphene.yaml`` read them. Every file is checked against its
git blob hash at the pinned commit, so a changed or truncated file is refused.
"""

import argparse
import hashlib
import subprocess
import sys
import urllib.request
from pathlib import Path

COMMIT = "a32e4cfe32e13ac0179c9641d3d022b88bcf99e6"
SOURCE = "https://raw.githubusercontent.com/pycroscopy/AICrystallographer/{commit}/{path}"
TARGET = Path(__file__).resolve().parent / "data" / "atomnet-graphene"
#: file name -> (path in the repository, git blob hash at COMMIT)
FILES = {
    "G-GrainBoundary-4nm.hdf5": ("AtomNet/exp_data/G-GrainBoundary-4nm.hdf5", "f125844719e0940435a915c7fae264eb43061df3"),
    "G-GrainBoundary-4nm-coord.npy": (
        "AtomNet/exp_data/G-GrainBoundary-4nm-coord.npy", "8a08c7e9db8289769db322d74f7774545e56182f"),
    "G-GrainBoundary-6nm.hdf5": ("AtomNet/exp_data/G-GrainBoundary-6nm.hdf5", "45ee2237441cbd699aac02f1131feb01692cc2a6"),
    "G-GrainBoundary-6nm-coord.npy": (
        "AtomNet/exp_data/G-GrainBoundary-6nm-coord.npy", "619b7e04228989c1266e8cdbaac3ac58560e2dfe"),
    "G-Si-2nm.hdf5": ("AtomNet/exp_data/G-Si-2nm.hdf5", "73c6ed36251b7fdc199d848545dd9fa789b377f0"),
    "G-Si-2nm-coord.npy": ("AtomNet/exp_data/G-Si-2nm-coord.npy", "7091f20a0b63b147ce10d3ab378a591e8d890a71"),
    "G-dimSi.hdf5": ("AtomNet/exp_data/G-dimtrimSi/G-dimSi.hdf5", "516badd7eec5d54731fe3edfaeeb7019bb7a341c"),
    "G-trimSi.hdf5": ("AtomNet/exp_data/G-dimtrimSi/G-trimSi.hdf5", "8d81cc583cc2ba209a448a0c78a5bc64e1876139"),
}


def git_blob_hash(content: bytes) -> str:
    """The hash git gives ``content`` as a blob (sha1 of ``b"blob <size>\\0"`` + content)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def read(path: str, git_dir: Path | None) -> bytes:
    if git_dir is not None:
        return subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"{COMMIT}:{path}"], check=True, capture_output=True
        ).stdout
    with urllib.request.urlopen(SOURCE.format(commit=COMMIT, path=path), timeout=60) as response:
        return response.read()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-git", type=Path, metavar="GIT_DIR",
                        help="a clone's .git folder (or a bare mirror) of pycroscopy/AICrystallographer")
    parser.add_argument("--to", type=Path, default=TARGET, help=f"where to put the files (default {TARGET})")
    args = parser.parse_args(argv)
    git_dir = args.from_git
    if git_dir is not None and (git_dir / ".git").is_dir():
        git_dir = git_dir / ".git"
    args.to.mkdir(parents=True, exist_ok=True)
    for name, (path, blob) in FILES.items():
        target = args.to / name
        if target.is_file() and git_blob_hash(target.read_bytes()) == blob:
            continue
        try:
            content = read(path, git_dir)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"{path}: could not fetch it ({error}); with no network, pass --from-git", file=sys.stderr)
            return 1
        if git_blob_hash(content) != blob:
            print(f"{path}: its content is not the file of commit {COMMIT[:7]} (git blob {blob[:7]})", file=sys.stderr)
            return 1
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(content)
        partial.replace(target)
        print(f"{name}: {len(content):,} bytes", flush=True)
    print(f"AtomNet's graphene scans are in {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
