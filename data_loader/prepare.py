"""Making a dataset's feature store ready before a loader opens it.

The embedded Synthetic dataset is generated when its store is absent or stale; a released
dataset (``datasets.RELEASES``) has every expert, text feature and test caption table a
config needs converted from ``<data_dir>/<root_feat_folder>/`` when the store lacks it;
EPIC-KITCHENS-100 is converted from RANP's release (``data_loader/released/epic_kitchens.py``),
or from the generated one (``data_loader/generated/epic_kitchens.py``) when ``root_feat_folder``
is ``generated``. Any other dataset must already have its store. train.py, test.py and misc/convert_features.py
call :func:`prepare_store`; ``ExpertDataLoader`` only loads.

Semantic classes and relevance matrices (RANP, ``data_loader/ranp/classes.py``) are brought up to
date as well: Synthetic derives its classes from its captions; a dataset configured with
``class_annotations`` or ``relevance_files`` has them imported when the store lacks them, or
holds them from another file or for other captions.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data_loader.generated.epic_kitchens import generate_epic_kitchens
from data_loader.generated.hgr_layout import generate_hgr_layout
from data_loader.generated.synthetic import GENERATOR_VERSION, generate_synthetic
from data_loader.generated.synthetic_classes import SOURCE as SYNTHETIC_SOURCE
from data_loader.generated.synthetic_classes import synthetic_classes
from data_loader.hgr.import_graphs import ROLE_GRAPHS, add_role_graphs, graphs_are_current
from data_loader.ranp.classes import (
    captions_sha1,
    classes_from_annotations,
    classes_path,
    import_relevance,
    read_captions,
    relevance_path,
    stored_source,
    write_classes,
)
from data_loader.released.convert import check_release, convert_plan, needs_conversion
from data_loader.released.datasets import (
    CHALLENGE_TEST_ROOT_FEAT_FOLDER,
    DEFAULT_ROOT_FEAT_FOLDER,
    RELEASES,
    feature_root,
    release_key,
    test_release_folders,
)
from data_loader.released.datasets import store_dir as store_dir_of
from data_loader.released.epic_kitchens import DATASET as EPIC_KITCHENS
from data_loader.released.epic_kitchens import NAMES as EPIC_NAMES
from data_loader.released.epic_kitchens import convert_epic_kitchens, store_is_current
from data_loader.released.hgr_msrvtt import convert_hgr_msrvtt, is_converted
from data_loader.released.release_plan import plan_store
from data_loader.store.feature_store import INDEX_NAME, STORE_DIR, read_index_attrs
from data_loader.teachtext.caption_masks import ensure_caption_mask
from data_loader.teachtext.teachers import ensure_teacher
from utils.errors import StoreError

GENERATED_EPIC_FOLDER = "generated"  # EPIC-KITCHENS-100's release folder name that asks for the generated one
# Datasets in HGR's MSR-VTT layout: "MSRVTT-HGR" reads it from <data_dir>/<root_feat_folder>;
# "SyntheticHGR" generates it (data_loader/generated/hgr_layout.py, seeded) under <data_dir>/<HGR_LAYOUT_DIR>.
HGR_DATASETS = ("MSRVTT-HGR", "SyntheticHGR")
HGR_LAYOUT_DIR = "hgr_layout"


def prepare_hgr_store(dataset_name: str, data_dir: Path, root_feat_folder: str, seed: int) -> None:
    """Convert (for SyntheticHGR first generate) the HGR layout into the store unless the store
    already is its conversion."""
    if dataset_name == "SyntheticHGR":
        root = data_dir / f"{HGR_LAYOUT_DIR}-seed{seed}"
        if not (root / "annotation").is_dir():
            generate_hgr_layout(root, seed)
    else:
        root = data_dir / root_feat_folder
        if not root.is_dir():
            raise StoreError(f"{root}: HGR layout folder not found (data_loader.args.root_feat_folder)")
    if not is_converted(root, data_dir):
        convert_hgr_msrvtt(root, data_dir / STORE_DIR)


def _synthetic_is_current(store_dir: Path, seed: int) -> bool:
    attrs = read_index_attrs(store_dir)
    return attrs.get("generator_version") == GENERATOR_VERSION and int(attrs.get("seed", -1)) == seed


def prepare_store(dataset_name: str, data_dir: str | Path, synthetic_seed: int = 0, *,
                  root_feat_folder: str = DEFAULT_ROOT_FEAT_FOLDER, split_name: str | None = None,
                  experts: Sequence[str] = (), feat_aggregation: dict | None = None,
                  text_feat: str | None = None, class_annotations: str | None = None,
                  relevance_files: dict[str, str] | None = None, caption_masks: str | None = None,
                  teachers: Sequence[tuple[str, str]] = (), challenge_mode: bool = False,
                  challenge_test_root_feat_folder: str = CHALLENGE_TEST_ROOT_FEAT_FOLDER,
                  role_graphs: str | None = None, role_graph_files: dict[str, str] | None = None) -> Path:
    """Generate or convert what the store of ``dataset_name`` under ``data_dir`` lacks; returns
    the store folder. A missing released file or store is a StoreError naming it.

    With ``challenge_mode`` a released dataset's challenge data is converted into its own store
    (``datasets.release_key``): experts, lists and text from ``root_feat_folder``, the
    ``public_server_test`` list, text and captions from ``challenge_test_root_feat_folder``.

    ``class_annotations`` (a JSON file) and ``relevance_files`` (``{split: HDF5 file}``) are
    imported into the store (see :func:`prepare_semantics`). ``caption_masks`` and ``teachers``
    ((base_path, file) pairs) name original pickles under the feature root
    (``datasets.feature_root``), converted when the store lacks them. ``role_graph_files``
    (``{"graphs": ..., "word2int": ..., "int2word": ...}``, or ``{"graphs": "generated"}``) are
    imported as HGR's text inputs ``hgr/<role_graphs>.h5`` (``data_loader/hgr/import_graphs.py``)
    when the store lacks them or holds them from another file."""
    key = release_key(dataset_name, challenge_mode) if dataset_name in RELEASES else dataset_name
    store_dir = store_dir_of(key, data_dir)
    if dataset_name == "Synthetic":
        if not _synthetic_is_current(store_dir, synthetic_seed):
            generate_synthetic(Path(data_dir), seed=synthetic_seed)
    elif dataset_name in HGR_DATASETS:
        prepare_hgr_store(dataset_name, Path(data_dir), root_feat_folder, synthetic_seed)
    elif dataset_name in RELEASES:
        check_release(key, Path(data_dir), root_feat_folder)
        plan = plan_store(key, list(experts), feat_aggregation or {}, text_feat, split_name)
        extra = test_release_folders(key, challenge_test_root_feat_folder)
        if needs_conversion(plan, Path(data_dir), root_feat_folder, extra):
            convert_plan(plan, Path(data_dir), root_feat_folder, extra_folders=extra)
    elif dataset_name == EPIC_KITCHENS:
        prepare_epic_kitchens(Path(data_dir), root_feat_folder, synthetic_seed)
    elif not (store_dir / INDEX_NAME).is_file():
        raise StoreError(f"{store_dir / INDEX_NAME}: feature store for {dataset_name} not found; "
                         f"set data_loader.args.data_dir to the folder holding {STORE_DIR}/")
    prepare_semantics(store_dir, dataset_name, class_annotations, relevance_files)
    if role_graph_files:
        name = role_graphs or ROLE_GRAPHS
        if "graphs" not in role_graph_files:
            raise StoreError("data_loader.args.role_graph_files: expected a 'graphs' entry (a "
                             "sent2rolegraph.augment.json, or \"generated\")")
        if not graphs_are_current(store_dir, name, str(role_graph_files["graphs"])):
            add_role_graphs(store_dir, role_graph_files["graphs"], role_graph_files.get("word2int"),
                            role_graph_files.get("int2word"), name)
    root = feature_root(dataset_name, data_dir, root_feat_folder)
    if caption_masks is not None:
        ensure_caption_mask(store_dir, root, caption_masks)
    for base_path, file in teachers:
        ensure_teacher(store_dir, root, base_path, file)
    return store_dir


def prepare_epic_kitchens(data_dir: Path, root_feat_folder: str, seed: int = 0) -> None:
    """Convert EPIC-KITCHENS-100 from RANP's release under ``<data_dir>/<root_feat_folder>`` when
    the store is absent or from another release; a ``root_feat_folder`` named ``generated``
    that holds no release yet is first filled with the generated EK-100 of ``seed``."""
    release = data_dir / root_feat_folder
    if root_feat_folder == GENERATED_EPIC_FOLDER and not (release / EPIC_NAMES.format("trn")).is_file():
        generate_epic_kitchens(release, seed=seed)
    if not store_is_current(data_dir, root_feat_folder):
        convert_epic_kitchens(data_dir, root_feat_folder)


def prepare_semantics(store_dir: Path, dataset_name: str, class_annotations: str | None = None,
                      relevance_files: dict[str, str] | None = None) -> None:
    """Write ``classes.h5`` (from ``class_annotations``, else derived for Synthetic) and the
    ``relevance/<split>.h5`` of ``relevance_files`` where the store lacks them or holds them
    from another source or for other captions."""
    if class_annotations is None and dataset_name != "Synthetic" and not relevance_files:
        return
    video_ids, caption_offsets, raw_captions = read_captions(store_dir)
    sha1 = captions_sha1(raw_captions)
    current = stored_source(classes_path(store_dir), sha1)
    if class_annotations is not None:
        if current != str(class_annotations):
            classes = classes_from_annotations(Path(class_annotations), video_ids, caption_offsets)
            write_classes(store_dir, classes, sha1=sha1, source=str(class_annotations))
    elif dataset_name == "Synthetic" and current != SYNTHETIC_SOURCE:
        write_classes(store_dir, synthetic_classes(raw_captions), sha1=sha1, source=SYNTHETIC_SOURCE)
    for split, source in (relevance_files or {}).items():
        if stored_source(relevance_path(store_dir, split), sha1) != str(source):
            import_relevance(Path(source), store_dir, split, sha1=sha1)
