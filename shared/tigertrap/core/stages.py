"""The pipeline's stages and its named pipelines, declared once (:mod:`tigertrap.core.contract`).

Each :class:`~tigertrap.core.contract.StageContract` below is everything the rest of the system
needs to know about a stage without importing it: its setting keys and path keys with their
bases, its settings class and functions (import paths, loaded only by its worker), the result
keys that are paths, what an earlier stage of a pipeline feeds it, and how it shards.
``tests/core/test_contract.py`` checks these declarations against the stages' settings classes.

:data:`PIPELINES` are the two workflows the field runs: building a model (download → detect →
snip → train → publish, the last a dry run unless asked) and processing a season (detect →
classify). In a pipeline, a stage's inputs default to the previous stages' outputs
(:class:`~tigertrap.core.contract.Feed`); a key the user gives always wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tigertrap.core.contract import (
    Feed,
    FolderOf,
    PathKey,
    Sharding,
    StageContract,
    Under,
    looks_like_weights_file,
)

__all__ = ["BUILTIN_STAGES", "PIPELINES", "Pipeline"]


def _not_a_word(words: Iterable[str]) -> Callable[[str], bool]:
    reserved = frozenset(words)
    return lambda value: value.strip().lower() not in reserved


def _keys(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _functions(stage: str) -> dict[str, str]:
    return {"run": f"tigertrap.{stage}.stage:run"}


def _sharding(stage: str, default_size: int) -> Sharding:
    module = f"tigertrap.{stage}.stage"
    return Sharding(split=f"{module}:split", run_shard=f"{module}:run_shard",
                    merge=f"{module}:merge", default_size=default_size)


DOWNLOAD = StageContract(
    "download",
    paths=(
        PathKey("metadata", description="LILA metadata CSV or zip"),
        PathKey("class_spec", description="class spec YAML"),
        PathKey("local_root", kind="dir", description="LILA images already on disk"),
        PathKey("md_results", mapping=True, description="dataset -> published MD results"),
        PathKey("cvwc_source", description="CVWC2019 archive or folder"),
        PathKey("dataset_name", access="write", kind="dir", base=Under("datasets"),
                default="nepal", name_only=True, description="writes datasets/<name>/"),
    ),
    settings_keys=_keys(
        "metadata class_spec dataset_name class_samples_default seed split_by train_fraction "
        "val_fraction test_fraction concurrency retries backoff timeout rate_limit mirrors "
        "verify local_root md_results cvwc_source cvwc_class dry_run"),
    settings="tigertrap.download.config:DownloadSettings",
    **_functions("download"),
    sharding=_sharding("download", default_size=10000),
    description="sample LILA BC per class with leak-free splits and fetch the images; import "
                "CVWC2019 tigers",
)

DETECT = StageContract(
    "detect",
    paths=(
        PathKey("input_dir", kind="dir", description="images to detect on"),
        PathKey("image_list", description="a .txt/.json list or a manifest .csv"),
        PathKey("models_dir", kind="dir", default="models/detectors",
                description="where weights are looked for"),
        PathKey("md_model", when=looks_like_weights_file, description="a weights file"),
        PathKey("md_file", access="write", base=FolderOf(("input_dir", "image_list")),
                default="md.json", climb=True, description="the MD output file"),
        PathKey("checkpoint_file", access="write", base=FolderOf(("md_file",)),
                description="checkpoint beside the output (deleted after the run)"),
    ),
    settings_keys=_keys(
        "input_dir image_list md_file md_model models_dir threshold recursive exclude_dirs "
        "checkpoint_freq checkpoint_file batch_size ncores device image_size download_weights "
        "path_column overwrite keep_model"),
    settings="tigertrap.detect.config:DetectSettings",
    **_functions("detect"),
    result_paths=("md_file",),
    feeds=(Feed("image_list", "download", ("lila.manifest", "cvwc.manifest")),),
    sharding=_sharding("detect", default_size=2000),
    description="MegaDetector over a folder, list or manifest -> md.json (format 1.6)",
)

SNIP = StageContract(
    "snip",
    paths=(
        PathKey("input_dir", kind="dir", default=".", description="images and the MD file"),
        PathKey("manifest", description="download manifest.csv (labels, splits)"),
        PathKey("md_file", base=FolderOf(("input_dir",)), default="md.json", climb=True,
                description="MD file to snip"),
        PathKey("snip_dir", access="write", kind="dir", base=FolderOf(("input_dir",)),
                default="snips", climb=True, description="crops and snips.csv"),
        PathKey("by_class_dir", access="write", kind="dir", base=FolderOf(("snip_dir",)),
                default="by_class", description="the by-class layout"),
    ),
    settings_keys=_keys(
        "input_dir md_file snip_dir lower_conf snip_size crop_method categories max_crops "
        "max_crops_by_class jpeg_quality manifest by_class by_class_dir draft workers"),
    settings="tigertrap.snip.config:SnipSettings",
    **_functions("snip"),
    result_paths=("snips_dir", "snips_csv", "by_class_dir"),
    feeds=(Feed("input_dir", "detect", ("md_file",), part="folder"),
           Feed("md_file", "detect", ("md_file",), part="name")),
    sharding=_sharding("snip", default_size=5000),
    description="crop animal detections (mewc-snip compatible, numbered by detection index)",
)

TRAIN = StageContract(
    "train",
    paths=(
        PathKey("data_dir", kind="dir", description="train/val/test folders"),
        PathKey("snips_csv", description="snips CSV with label and split"),
        PathKey("class_map", description="class_map.yaml"),
        PathKey("weights", when=_not_a_word(("", "none", "null", "random", "imagenet")),
                description="a local weights file"),
        PathKey("output_path", access="write", kind="dir", default="runs/train",
                description="run folder"),
        PathKey("savefile", access="write", kind="dir", base=Under("models/classifiers"),
                default="tigertrap", name_only=True, description="bundle name"),
        PathKey("bundle_path", access="write", kind="dir", description="bundle folder"),
    ),
    settings_keys=_keys(
        "data_dir snips_csv class_map classes output_path bundle_path savefile model weights "
        "input_size recipe seed batch_size head loss label_smoothing optimizer optim_reg "
        "learning_rate lr_scheduler lr_factor lr_patience early_stop_patience num_aug "
        "froz_epoch buf prog_stage_len prog_tot_epoch magnitudes dropouts "
        "class_samples_default class_samples_specific cache checkpoint_monitor tiger_class "
        "tiger_recall crop_method snip_size wandb_project wandb_entity wandb_mode"),
    settings="tigertrap.train.config:TrainSettings",
    **_functions("train"),
    result_paths=("run_dir", "bundle_dir"),
    feeds=(Feed("data_dir", "snip", ("by_class_dir",)),),
    description="train, evaluate and export a kimm classifier bundle",
)

RETRAIN = StageContract(
    "retrain",
    paths=(*TRAIN.paths,
           PathKey("previous_bundle", kind="dir", description="the bundle to retrain from")),
    settings_keys=TRAIN.settings_keys | {"previous_bundle"},
    settings="tigertrap.train.stage:RetrainJobSettings",
    run="tigertrap.train.stage:run_retrain",
    result_paths=("run_dir", "bundle_dir", "comparison_dir", "previous_bundle"),
    queue="train",
    description="retrain from a previous bundle's weights on the merged (reviewed) set, then "
                "compare both bundles on the same test sets; promotion stays explicit",
)

CLASSIFY = StageContract(
    "classify",
    paths=(
        PathKey("md_file", description="MD file to classify"),
        PathKey("model", kind="dir", description="classifier bundle folder"),
        PathKey("sequence_file", description="CSV with path and sequence columns"),
        PathKey("output_dir", access="write", kind="dir",
                description="default: the MD file's folder"),
        *(PathKey(key, access="write", base=FolderOf(("output_dir", "md_file")),
                  default=default, description=description)
          for key, default, description in (
              ("output_md", "md_classified.json", "classified MD file"),
              ("pred_csv", "predictions.csv", "one row per detection"),
              ("images_csv", "images.csv", "one row per image"),
              ("long_csv", "predictions_long.csv", "long table"))),
    ),
    settings_keys=_keys(
        "lower_conf top_k tiger_class tiger_threshold backend precision batch_size max_wait_ms "
        "max_queue threads md_file model output_dir output_md pred_csv images_csv long_table "
        "long_csv sequence_source sequence_file sequence_gap image_smoothing "
        "smooth_min_dominant smooth_max_nondominant smooth_min_dominant_over_other "
        "smooth_other_classes smooth_classification_threshold smooth_detection_threshold "
        "decode_workers tiger_webhook tiger_webhook_timeout tiger_webhook_retries "
        "tiger_webhook_backoff"),
    settings="tigertrap.classify.config:ClassifySettings",
    **_functions("classify"),
    result_paths=("md_file", "predictions_csv", "images_csv", "long_csv"),
    feeds=(Feed("md_file", "rde", ("md_file",)),
           Feed("md_file", "detect", ("md_file",)),
           Feed("model", "train", ("bundle_dir",))),
    sharding=_sharding("classify", default_size=5000),
    description="classify detections -> md_classified.json, predictions and images CSVs",
)

RDE = StageContract(
    "rde",
    paths=(
        PathKey("md_file", description="MD file to clean"),
        PathKey("manifest", description="download manifest.csv (camera = location)"),
        PathKey("output_dir", access="write", kind="dir",
                description="review folder (default: <MD file folder>/rde)"),
        PathKey("review_dir", kind="dir", description="the reviewed folder (MODE=remove)"),
        PathKey("output_md", access="write", base=FolderOf(("md_file",)),
                default="md_rde.json", description="the cleaned MD file"),
    ),
    settings_keys=_keys(
        "md_file output_dir output_md occurrence_threshold iou_threshold min_conf max_conf "
        "min_suspicious_size max_suspicious_size exclude_categories category_agnostic camera "
        "folder_levels manifest workers mode review_dir accept_all"),
    settings="tigertrap.classify.stage:RdeJobSettings",
    run="tigertrap.classify.stage:run_rde",
    result_paths=("review_dir", "suspicious_csv", "md_file"),
    feeds=(Feed("md_file", "detect", ("md_file",)),),
    queue="classify",
    description="MegaDetector's repeat-detection elimination: find repeats for review, "
                "remove them after review (or all, with ACCEPT_ALL)",
)

EXPORT = StageContract(
    "export",
    paths=(
        PathKey("md_file", description="classified MD file"),
        PathKey("deployments", description="CSV: deploymentID, latitude, longitude, ..."),
        PathKey("manifest", description="download manifest.csv (locations, times)"),
        PathKey("taxa", description="CSV: class, scientificName"),
        PathKey("output_dir", access="write", kind="dir",
                description="package folder (default: <MD file folder>/camtrap-dp)"),
    ),
    settings_keys=_keys(
        "md_file output_dir deployments manifest deployment_by taxa min_conf event_gap "
        "utc_offset time_fallback title project_title contributor sampling_design "
        "capture_method data_license media_license"),
    settings="tigertrap.classify.camtrap_dp:CamtrapDPSettings",
    run="tigertrap.classify.stage:run_export",
    result_paths=("package_dir",),
    feeds=(Feed("md_file", "classify", ("md_file",)),),
    queue="classify",
    description="a Camtrap DP 1.0 data package of a classified MD file, validated",
)

PUBLISH = StageContract(
    "publish",
    paths=(
        PathKey("bundle", kind="dir", description="classifier bundle folder"),
        PathKey("output_dir", access="write", kind="dir",
                description="where the folder is written (default: beside the bundle)"),
    ),
    settings_keys=_keys(
        "bundle target output_dir dry_run repo_id hf_token hf_endpoint private revision "
        "model_id friendly_name description developer owner citation license license_url "
        "info_url region cls_detec_thresh cls_class_thresh addaxai_v6_min_version "
        "addaxai_v7_min_app_version"),
    settings="tigertrap.publish.stage:PublishJobSettings",
    **_functions("publish"),
    result_paths=("folder",),
    feeds=(Feed("bundle", "train", ("bundle_dir",)),),
    description="the Hugging Face folder (uploaded unless DRY_RUN) or an AddaxAI model folder",
)

#: The pipeline's stages in pipeline order.
BUILTIN_STAGES: dict[str, StageContract] = {
    c.stage: c for c in (DOWNLOAD, DETECT, SNIP, TRAIN, CLASSIFY, PUBLISH, RDE, EXPORT,
                         RETRAIN)}


@dataclass(frozen=True)
class Pipeline:
    """A named sequence of stages, with defaults for their keys (the user's keys win)."""

    name: str
    stages: tuple[str, ...]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline("build-model", ("download", "detect", "snip", "train", "publish"),
             defaults={"snip": {"BY_CLASS": True}, "publish": {"DRY_RUN": True}},
             description="LILA/CVWC images -> MegaDetector -> crops by class -> trained "
                         "bundle -> Hugging Face folder (a dry run unless DRY_RUN=false)"),
    Pipeline("process-season", ("detect", "classify"),
             description="a season's frames -> md.json -> md_classified.json and CSVs for "
                         "Timelapse and AddaxAI"),
)}
