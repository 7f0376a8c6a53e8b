"""Build the model, data, loss, optimiser, scheduler and page writer from a resolved config.

This is where the component packages are imported, and so where they fill the registries
of ``utils.registry`` that configs name their components from.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

import data_loader as loaders  # noqa: F401  (registers ExpertDataLoader)
import model as models  # noqa: F401  (registers models, losses, metrics)
from data_loader.expert_loader import ExpertDataLoader
from data_loader.prepare import prepare_store
from data_loader.teachtext.teachers import load_teacher, teacher_name
from model.dims import feature_width, model_inputs
from report import ranking_page  # noqa: F401  (registers RankingPage)
from trainer import optim  # noqa: F401  (registers optimisers and schedulers)
from trainer.checkpoints.files import check_weights_fit
from trainer.checkpoints.hgr import init_from_original
from trainer.evaluate import needs_relevance
from trainer.teachtext.distill import Distillation
from utils.config.options import DistilOptions, TrainerOptions, options_from, used_experts
from utils.config.resolved import Config
from utils.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS, VISUALIZERS


def trainer_options(config: Config) -> TrainerOptions:
    """The ``trainer`` section with every default filled in."""
    return options_from(TrainerOptions, config.get("trainer", {}))


def build_model(config: Config) -> torch.nn.Module:
    """The model of ``config["arch"]`` with the widths the data implies (no data read)."""
    return MODELS.build(config["arch"], **model_inputs(config.data))


def initialise_weights(model: torch.nn.Module) -> list[str]:
    """Start a new model from the released checkpoint its config names (HGR's
    ``arch.args.init_checkpoint``, e.g. RANP's GloVe word embeddings): the entries it shares
    with the model are copied (``trainer.checkpoints.hgr.init_from_original``). Returns their names."""
    path = getattr(getattr(model, "config", None), "init_checkpoint", "")
    return init_from_original(model, Path(path)) if path else []


def load_model(config: Config, state_dict: dict[str, torch.Tensor], source: str | Path = "the checkpoint"
               ) -> torch.nn.Module:
    """The model of ``config`` holding ``state_dict`` (every key, strictly), on the CPU. It is
    built on the meta device and takes the given tensors as they are, so no weights are
    initialised only to be overwritten (2 s for MSR-VTT CE) and none are held twice.

    Floating-point weights of another precision (float16, float64) are cast to the model's. Keys
    or shapes that differ from the config's model are a CheckpointError naming ``source``.
    """
    with torch.device("meta"):
        model = build_model(config)
    expected = model.state_dict()
    check_weights_fit(expected, state_dict, source)
    cast = {key: value.to(expected[key].dtype) if value.is_floating_point() and expected[key].is_floating_point()
            else value for key, value in state_dict.items()}
    model.load_state_dict(cast, assign=True)
    return model


def distil_options(config: Config) -> DistilOptions | None:
    """``distil_params`` with defaults filled in when ``distil_loss`` is on, else None."""
    if not config.get("distil_loss"):
        return None
    options = options_from(DistilOptions, config.get("distil_params") or {})
    if not options.teachers:
        raise config.error("distil_params.teachers", "distil_loss is true but no teacher is given")
    if isinstance(options.moee, list) and len(options.moee) != len(options.teachers):
        raise config.error("distil_params.moee", f"expected one flag per teacher ({len(options.teachers)}), "
                                                 f"got {len(options.moee)}")
    return options


def prepare_data(config: Config, training: bool = True) -> None:
    """Generate or convert what the dataset's store lacks for ``config`` (see data_loader/prepare.py);
    with ``training`` False, what evaluation needs only (no teachers, no caption mask)."""
    args = config["data_loader"]["args"]
    distil = distil_options(config) if training else None
    prepare_store(args["dataset_name"], args["data_dir"], args.get("synthetic_seed", 0),
                  root_feat_folder=args.get("root_feat_folder", "structured-symlinks"),
                  split_name=args.get("split_name", "val"), experts=used_experts(config["experts"]),
                  feat_aggregation=args.get("feat_aggregation", {}), text_feat=config["experts"]["text_feat"],
                  class_annotations=args.get("class_annotations"), relevance_files=args.get("relevance_files"),
                  caption_masks=config.get("caption_masks") if training else None,
                  teachers=[(distil.base_path, file) for file in distil.teachers] if distil else [],
                  challenge_mode=bool(config.get("challenge_mode", False)),
                  role_graphs=args.get("role_graphs"), role_graph_files=args.get("role_graph_files"),
                  **{k: args[k] for k in ("challenge_test_root_feat_folder",) if k in args})


def build_data(config: Config, device: torch.device | None = None, training: bool = True) -> ExpertDataLoader:
    """The data loader of ``config["data_loader"]`` over a store :func:`prepare_data` made ready;
    its features are kept on ``device`` when they fit there (``ExpertDataLoader.load_to_device``);
    ``caption_masks`` and ``training_file`` shape its training batches unless ``training`` is
    False. ConfigError when a feature width the model expects differs from the store's, a
    StoreError when the config's metrics need relevance the store cannot give."""
    training_keys = {key: config.get(key) if training else None for key in ("caption_masks", "training_file")}
    data = DATASETS.build(config["data_loader"], experts=used_experts(config["experts"]),
                          text_feat=config["experts"]["text_feat"],
                          challenge_mode=bool(config.get("challenge_mode", False)), **training_keys)
    _check_widths(config, data)
    data.require_relevance(train=False, evaluate=any(needs_relevance(n) for n in config.get("metrics") or []))
    if device is not None:
        data.load_to_device(device)
    return data


def _check_widths(config: Config, data: ExpertDataLoader) -> None:
    inputs = model_inputs(config.data)
    for name, width in inputs["feat_dims"].items():
        stored = data.store.experts[name].features.shape[-1]
        if stored != width:
            raise config.error(f"data_loader.args.feat_aggregation.{name}",
                               f"the model expects {width}-wide features but the store's are {stored} wide "
                               f"(set feat_dims to match {data.store.path})")
    model_class = MODELS.get(config["arch"]["type"])
    args = config["data_loader"]["args"]
    for key, value in getattr(model_class, "loader_args", {}).items():
        if args.get(key) != value:
            raise config.error(f"data_loader.args.{key}", f"{config['arch']['type']} needs {json.dumps(value)}, "
                                                          f"got {json.dumps(args.get(key))}")
    if getattr(model_class, "needs_role_graphs", False) and not args.get("role_graphs"):
        raise config.error("data_loader.args.role_graphs", f"{config['arch']['type']} reads captions as role "
                                                           "graphs: name the store's hgr/<name>.h5 (see docs/hgr.md)")
    graphs = getattr(data, "role_graphs", None)
    num_words = config["arch"].get("args", {}).get("num_words")
    if graphs is not None and num_words != graphs.num_words:
        raise config.error("arch.args.num_words", f"the model has {num_words} words but {graphs.path} was "
                                                  f"written for a vocabulary of {graphs.num_words}")
    stored = data.store.text_embeddings.shape[-1]
    if stored != inputs["text_dim"]:
        raise config.error("experts.text_feat", f"{config['experts']['text_feat']} is {inputs['text_dim']}-wide "
                                                f"but the store's text features are {stored} wide")


def build_distillation(config: Config, data: ExpertDataLoader) -> Distillation | None:
    """The TeachText term of ``config`` (None without ``distil_loss``): its teachers loaded from the
    store of ``data`` and checked against the config and the training videos.

    A teacher may use any expert the config knows (``data_loader.args.feat_aggregation``); its
    embeddings have width ``experts.ce_shared_dim``, or each expert's feature width for teachers
    flagged ``distil_params.moee``.
    """
    options = distil_options(config)
    if options is None:
        return None
    known = list(config["data_loader"]["args"]["feat_aggregation"])
    shared = model_inputs(config.data)["ce_shared_dim"]
    native = options.moee if isinstance(options.moee, list) else [options.moee] * len(options.teachers)
    teachers = []
    for file, own_widths in zip(options.teachers, native):
        dims = {e: feature_width(config.data, e) if own_widths else shared for e in known}
        teachers.append(load_teacher(data.store.path, teacher_name(options.base_path, file), dims, data.train_rows,
                                     data.store.video_ids))
    return Distillation(teachers, options.distil_weight)


def build_loss(config: Config) -> torch.nn.Module:
    return LOSSES.build(config["loss"])


def build_optimizer(config: Config, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    """Optimiser over the trainable parameters, and its scheduler (None when not configured)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS.build(config["optimizer"], params)
    scheduler = SCHEDULERS.build(config["lr_scheduler"], optimizer) if config.get("lr_scheduler") else None
    return optimizer, scheduler


def build_page_writer(config: Config) -> Callable[..., Any]:
    return VISUALIZERS.build(config.get("visualizer") or {"type": "RankingPage"})


def select_device(config: Config, local_rank: int = 0) -> torch.device:
    """``trainer.device``: "auto" picks CUDA when present (and ``n_gpu`` is not 0), else CPU; "cpu",
    "cuda" (GPU ``local_rank``, one per torchrun process) or "cuda:<n>".

    ConfigError for another value, or for CUDA on a machine without it.
    """
    wanted = trainer_options(config).device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() and config.get("n_gpu", 1) != 0 else "cpu"
    try:
        device = torch.device(wanted)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise config.error("trainer.device", 'expected "auto", "cpu", "cuda" or "cuda:<n>", '
                                             f"got {json.dumps(wanted)}")
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise config.error("trainer.device", f"{json.dumps(wanted)} asked for, but torch {torch.__version__} "
                                             'sees no CUDA device on this machine (use "cpu" or "auto")')
    index = local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise config.error("trainer.device", f"CUDA device {index} asked for, but this machine has "
                                             f"{torch.cuda.device_count()}")
    return torch.device("cuda", index)
