"""Per-dataset facts: which stored splits a config's ``split_name`` trains and evaluates on, and
where each dataset's files lie in the original feature release.

Stored split names of the released datasets are the stems of their official list files
(``val_list_full`` for ``val_list_full.txt``), so each list is stored once however many
``split_name`` values use it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from data_loader.store.feature_store import STORE_DIR
from utils.errors import ConfigError

# Where a dataset folder holds its unpacked feature release, unless the config says otherwise.
DEFAULT_ROOT_FEAT_FOLDER = "structured-symlinks"

# dataset -> split_name -> (training split, evaluation split), names of splits in the store.
SPLITS: dict[str, dict[str, tuple[str, str]]] = {
    "Synthetic": {"val": ("train", "val"), "test": ("train", "test")},
    "MSRVTT": {
        "full-val": ("train_list_full", "val_list_full"),
        "full-test": ("train_list_full", "test_list_full"),
        "jsfusion": ("train_list_jsfusion", "val_list_jsfusion"),
        "miech": ("train_list_miech", "test_list_miech"),
    },
    "MSVD": {"dev": ("train_list", "val_list"), "official": ("train_list", "test_list")},
    "LSMDC": {"full-val": ("train_list", "val_list"), "full-test": ("train_list", "test_list")},
    "DiDeMo": {"val": ("train_list", "val_list"), "test": ("train_list", "test_list")},
    "ActivityNet": {"val1": ("train_list", "val_1_list"), "val": ("train_list", "val_list")},
    "QuerYD": {"val": ("train_list", "val_list"), "test": ("train_list", "test_list")},
    "QuerYDSegments": {"val": ("train_list", "val_list"), "test": ("train_list", "test_list")},
    "YouCook2": {"val": ("train_list", "val_list")},
    # train and val are carved from RANP's training clips by video (data_loader/released/epic_kitchens.py)
    "EPIC-KITCHENS-100": {"val": ("train", "val"), "test": ("train", "test")},
}

# Official split lists shipped with the project: LIST_ROOT/<Release.list_folder>/<split>.txt.
LIST_ROOT = Path(__file__).resolve().parents[2] / "misc" / "datasets"


@dataclass(frozen=True)
class TextFiles:
    """The released files of one text feature, merged in order (each adds its videos).

    ``youtube_keyed``: the files are keyed by YouTube ids and are mapped back to video ids
    through the dataset's ``youtube_mapping`` (dict video id -> YouTube id).
    """

    paths: tuple[str, ...]
    youtube_keyed: bool = False


@dataclass(frozen=True)
class Release:
    """Where a dataset's released files lie, relative to its feature root, and its caption rules.

    folder: the dataset's folder under ``data/`` (and the name ``misc/sync_experts.py`` takes).
    list_folder: folder under LIST_ROOT with the official split lists; lists not found there
        (and all lists when None) are read from the feature root, as the original does.
    custom_paths: expert -> released files, for experts without a canonical path (or overriding it).
    split_paths: split_name -> expert -> files, replacing custom_paths for that split.
    text_dir, text_paths: a text feature ``name`` is ``<text_dir>/<name>.pkl`` unless overridden.
    text_feats: the only text features the dataset has (None: any name).
    fused_captions: all captions of a video are concatenated into one.
    strip_list_suffix: list entries lose everything from their first '.' (file extensions).
    test_captions: evaluation split -> pickle of video id -> index of its only test caption.
    optional_lists: split lists the release may lack (their splits are then not stored).
    text_suffix: file suffix of a text feature found by name under ``text_dir``.
    store_folder: the store's folder under ``data_dir``.
    """

    folder: str
    raw_captions: str = "raw-captions.pkl"
    list_folder: str | None = None
    custom_paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    split_paths: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    text_dir: str = "aggregated_text_feats"
    text_paths: dict[str, TextFiles] = field(default_factory=dict)
    text_feats: tuple[str, ...] | None = None
    youtube_mapping: str | None = None
    fused_captions: bool = False
    strip_list_suffix: bool = False
    test_captions: dict[str, str] = field(default_factory=dict)
    optional_lists: frozenset[str] = frozenset()
    text_suffix: str = ".pkl"
    store_folder: str = STORE_DIR

    def text_files(self, name: str) -> TextFiles:
        """The released files of text feature ``name``."""
        return self.text_paths.get(name, TextFiles((f"{self.text_dir}/{name}{self.text_suffix}",)))


_DIDEMO_FACE = ("aggregated_facefeats_25fps_256px_stride1/face-avg.pickle",)
_MSRVTT_CUSTOM = {
    "audio": ("aggregated_audio_feats/Audio_MSRVTT_new.pickle",),
    "face": ("aggregated_face_feats/facefeats-avg.pickle",),
    "ocr": ("aggregated_ocr_feats/ocr-raw.pickle",),
    "speech": ("aggregated_speech/speech-w2v.pickle",),
}

RELEASES: dict[str, Release] = {
    "MSRVTT": Release(
        folder="MSRVTT", list_folder="msrvtt", custom_paths=_MSRVTT_CUSTOM,
        split_paths={"miech": {**_MSRVTT_CUSTOM,
                               "antoine-rgb": ("antoine/resnet_features.pickle",),
                               "audio": ("antoine/audio_features.pickle",),
                               "flow": ("antoine/flow_features.pickle",),
                               "face": ("antoine/facefeats-clone.pickle",)}},
        text_paths={"openai": TextFiles(("aggregated_text_feats/w2v_MSRVTT_openAIGPT.pickle",))},
        test_captions={"val_list_jsfusion": "jsfusion_val_caption_idx.pkl"},
    ),
    "MSVD": Release(
        folder="MSVD", list_folder="msvd",
        custom_paths={
            "face": ("aggregated_face_feats/face-avg.pickle",),
            "ocr": ("aggregated_ocr_feats/ocr-w2v.pickle",),
            "r2p1d.r2p1d-ig65m-kinetics.0": (
                "aggregated_r2p1d_30fps_256px_stride8_offset0_inner_stride1/r2p1d-ig65m-kinetics-avg.pickle",),
        },
        text_paths={"openai": TextFiles(tuple(f"aggregated_text_feats/openai-caption-{part}.pkl"
                                              for part in ("train", "val", "test")), youtube_keyed=True)},
        youtube_mapping="dict_youtube_mapping.pkl",
    ),
    "LSMDC": Release(
        folder="LSMDC",
        custom_paths={
            "audio": ("aggregated_audio/vggish-raw.pickle",),
            "ocr": ("aggregated_ocr_feats/ocr-w2v.pkl",),
            "face": ("antoine/face-max-with-blank-val.pickle",),
            "speech": ("aggregated_speech/speech-w2v.pickle",),
        },
        text_paths={"openai": TextFiles(("aggregated_text_feats/openai-text.pickle",))},
    ),
    "DiDeMo": Release(
        folder="DiDeMo", list_folder="didemo", fused_captions=True, strip_list_suffix=True,
        custom_paths={
            "audio": ("aggregated_audio_feats/vggish-audio-raw.pickle",),
            "ocr": ("aggregated_ocr_feats/ocr-feats.pkl",),
            "speech": ("aggregated_speech_feats/stt_w2v.pickle",),
            "face": _DIDEMO_FACE,
        },
        text_paths={"openai": TextFiles(("aggregated_text_feats/openai-feats.pkl",))},
    ),
    "ActivityNet": Release(
        folder="activity-net", list_folder="activity-net", fused_captions=True,
        raw_captions="raw-captions-train-val_1.pkl", optional_lists=frozenset({"val_list"}),
        custom_paths={
            "audio": ("aggregated_audio/vggish-audio-raw.pickle",),
            "speech": ("aggregated_speech/goog_w2v-speech-raw.pickle",),
            "ocr": ("aggregated_ocr_feats/ocr-w2v.pkl",),
            "face": _DIDEMO_FACE,
        },
        text_paths={"openai": TextFiles(("aggregated_text_feats/openai-train.pkl",
                                         "aggregated_text_feats/openai-val1.pkl"))},
    ),
    "QuerYD": Release(
        folder="QuerYD", fused_captions=True, text_dir="text_embeddings",
        raw_captions="structured-symlinks/raw_captions_combined_filtered.pkl",
        custom_paths={"audio": ("aggregated_audio/vggish-raw.hickle",)},
    ),
    "QuerYDSegments": Release(
        folder="QuerYDSegments", text_dir="text_embeddings",
        raw_captions="structured-symlinks/split_raw_captions_filtered.pkl",
        custom_paths={"audio": ("aggregated_audio/vggish-raw.hickle",)},
    ),
    "YouCook2": Release(
        folder="YouCook2", text_feats=("w2v", "openai"),
        custom_paths={
            "audio": ("aggregated_audio/vggish-raw.pickle",),
            "ocr": ("aggregated_ocr_feats/ocr-w2v.pkl",),
        },
    ),
}


# The released datasets (RELEASES gains their challenge keys below).
DATASET_NAMES: tuple[str, ...] = tuple(RELEASES)

# ----------------------------------------------------------------------------- CVPR 2020 challenge
# The Video Pentathlon releases: ``challenge-release-1`` holds the visual features of every video,
# the training and dev lists and ``public_server_val.txt`` with their text; ``challenge-release-2``
# holds ``public_server_test.txt`` and its text and raw captions only. Each dataset's challenge
# data is a release of its own, keyed ``challenge_key(name)``, converted into its own store
# (``challenge-store/``) from both release folders (data_loader/released/convert.py).
CHALLENGE_SUFFIX = "-challenge"
CHALLENGE_STORE_FOLDER = "challenge-store"
CHALLENGE_ROOT_FEAT_FOLDER = "challenge-release-1"
CHALLENGE_TEST_ROOT_FEAT_FOLDER = "challenge-release-2"
PUBLIC_SPLITS = ("public_server_val", "public_server_test")
# dataset -> (its dev split_name, that split's list stem, the phases it has), as the original's
# challenge dataset classes map them; LSMDC was dropped from the challenge and has no release-2.
_CHALLENGE_DEV = {"MSRVTT": ("val", "val_list", PUBLIC_SPLITS), "MSVD": ("dev", "val_list", PUBLIC_SPLITS),
                  "DiDeMo": ("val", "val_list", PUBLIC_SPLITS), "ActivityNet": ("val", "val_list", PUBLIC_SPLITS),
                  "YouCook2": ("val", "val_list", PUBLIC_SPLITS),
                  "LSMDC": ("full-val", "val_list", ("public_server_val",))}
# Challenge text features are aggregated_text_feats/<name><suffix>, whatever the main release calls them.
_CHALLENGE_TEXT_SUFFIX = {"MSRVTT": ".pickle", "LSMDC": ".pickle"}


def challenge_key(dataset_name: str) -> str:
    """The release key of a dataset's challenge data, e.g. ``MSRVTT-challenge``."""
    return dataset_name + CHALLENGE_SUFFIX


def release_key(dataset_name: str, challenge_mode: bool) -> str:
    """The key of the release a config reads: the dataset's challenge one in challenge mode.
    ConfigError for a dataset the challenge does not cover."""
    if not challenge_mode:
        return dataset_name
    if dataset_name not in _CHALLENGE_DEV:
        raise ConfigError(f"challenge_mode: {dataset_name} is not a challenge dataset; expected one of: "
                          f"{', '.join(_CHALLENGE_DEV)}")
    return challenge_key(dataset_name)


for _name, (_dev, _dev_list, _phases) in _CHALLENGE_DEV.items():
    SPLITS[challenge_key(_name)] = {_dev: ("train_list", _dev_list),
                                    **{phase: ("train_list", phase) for phase in _phases}}
    RELEASES[challenge_key(_name)] = dataclasses.replace(
        RELEASES[_name], list_folder=None, split_paths={}, text_paths={}, text_feats=None, youtube_mapping=None,
        test_captions={}, optional_lists=frozenset(), text_suffix=_CHALLENGE_TEXT_SUFFIX.get(_name, ".pkl"),
        store_folder=CHALLENGE_STORE_FOLDER)


def test_release_folders(dataset_name: str, challenge_test_root_feat_folder: str) -> list[str]:
    """The release folders holding the ``public_server_test`` list, text and captions of a release
    key: the challenge's second release where the dataset has that phase, else none."""
    return [challenge_test_root_feat_folder] if "public_server_test" in SPLITS.get(dataset_name, {}) else []


def store_dir(dataset_name: str, data_dir: str | Path) -> Path:
    """The store folder of a dataset (or release key) under ``data_dir``."""
    release = RELEASES.get(dataset_name)
    return Path(data_dir) / (release.store_folder if release is not None else STORE_DIR)


def split_lists(dataset_name: str) -> list[str]:
    """Every stored split of a released dataset (list file stems), training lists first."""
    pairs = SPLITS[dataset_name].values()
    return list(dict.fromkeys([train for train, _ in pairs] + [test for _, test in pairs]))


def official_list(dataset_name: str, split: str) -> Path | None:
    """The official list file of ``split`` shipped under LIST_ROOT, or None when not shipped."""
    folder = RELEASES[dataset_name].list_folder
    path = LIST_ROOT / folder / f"{split}.txt" if folder is not None else None
    return path if path is not None and path.is_file() else None


def list_path(dataset_name: str, split: str, root_feat: Path, official: bool = True) -> Path:
    """The list file of ``split``: the official copy under LIST_ROOT when shipped (and ``official``),
    else the feature root's."""
    shipped = official_list(dataset_name, split) if official else None
    return shipped or Path(root_feat) / f"{split}.txt"


def read_video_list(path: Path, dataset_name: str) -> list[str]:
    """The video ids of a list file, one per line (blank lines skipped), with the file suffix
    dropped for datasets whose lists carry one (``strip_list_suffix``)."""
    ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    release = RELEASES.get(dataset_name)
    return [v.split(".")[0] for v in ids] if release is not None and release.strip_list_suffix else ids


def split_pair(dataset_name: str, split_name: str, available: list[str]) -> tuple[str, str]:
    """(train split, eval split) for ``split_name``.

    Known datasets use their table above; any other store evaluates on the split called
    ``split_name`` and trains on its ``train`` split. Raises ConfigError naming the choices.
    """
    table = SPLITS.get(dataset_name)
    if table is not None:
        if split_name not in table:
            raise ConfigError(f"data_loader.args.split_name: unknown split '{split_name}' for {dataset_name}; "
                           f"expected one of: {', '.join(table)}")
        return table[split_name]
    if split_name not in available:
        raise ConfigError(f"data_loader.args.split_name: split '{split_name}' is not in the store; "
                       f"it has: {', '.join(sorted(available))}")
    return "train", split_name


def feature_root(dataset_name: str, data_dir: str | Path, root_feat_folder: str) -> Path:
    """Where a config's files relative to the features lie (``training_file``, caption masks,
    teacher pickles): the unpacked release ``<data_dir>/<root_feat_folder>`` of a released
    dataset, ``data_dir`` itself for any other."""
    return Path(data_dir) / root_feat_folder if dataset_name in RELEASES else Path(data_dir)
