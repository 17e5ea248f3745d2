"""Settings of the publish stage (keys in ``publish.env``; environment variables override).

AddaxAI's own key names are kept where they exist (``CLS_DETEC_THRESH`` is AddaxAI's
``var_cls_detec_thresh``); ``HF_TOKEN`` and ``HF_ENDPOINT`` are the names ``huggingface_hub``
itself reads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from tigertrap.core.config import StageSettings

__all__ = ["AddaxRegion", "PublishSettings"]

#: AddaxAI v7's ``ModelRegion``: how its classifier drop-down groups models.
AddaxRegion = Literal["global", "africa", "americas", "asia", "europe", "oceania"]


class PublishSettings(StageSettings):
    """Where to publish and what the published metadata says."""

    repo_id: str | None = Field(default=None, description="Hub model repo, ORG/NAME")
    hf_token: SecretStr | None = Field(default=None, description="Hub token with write access")
    hf_endpoint: str | None = Field(default=None, description="Hub address; None = huggingface.co")
    private: bool = False
    revision: str = "main"

    model_id: str = Field(default="", description="AddaxAI model id; default: bundle name")
    friendly_name: str = Field(default="", description="name shown in AddaxAI; default: bundle")
    description: str = Field(default="", description="default: generated from the manifest")
    developer: str = "tigertrap"
    owner: str = ""
    citation: str = ""
    license: str = Field(default="mit", description="Hub licence id")
    license_url: str = "https://opensource.org/license/mit"
    info_url: str = ""
    region: AddaxRegion = "asia"

    cls_detec_thresh: float = Field(default=0.2, ge=0.01, le=0.99,
                                    description="MD confidence above which AddaxAI classifies")
    cls_class_thresh: float = Field(default=0.5, ge=0.01, le=0.99,
                                    description="below it AddaxAI says 'unidentified animal'")
    addaxai_v6_min_version: str = "6.12"
    addaxai_v7_min_app_version: str = "7.0.1"
