"""Uploading a folder to a Hugging Face Hub model repo.

``huggingface_hub`` does the work: ``create_repo(exist_ok=True)`` then ``upload_folder`` (one
commit; small files go in the commit itself, large ones through the Hub's LFS/Xet storage).
The token and the Hub's address come from the settings, which read ``HF_TOKEN`` and
``HF_ENDPOINT`` from the environment at call time (``huggingface_hub`` itself reads
``HF_ENDPOINT`` only once, when it is first imported).
"""

from __future__ import annotations

from pathlib import Path

from tigertrap.publish.config import PublishSettings

__all__ = ["DEFAULT_ENDPOINT", "HubUploadError", "check_hub_settings", "upload_to_hub"]

DEFAULT_ENDPOINT = "https://huggingface.co"


class HubUploadError(RuntimeError):
    """The Hub refused the upload or could not be reached; the message says which and why."""


def check_hub_settings(settings: PublishSettings) -> None:
    """Raise :class:`HubUploadError` unless a repo id (ORG/NAME) and a token are set."""
    if not settings.repo_id or settings.repo_id.count("/") != 1:
        raise HubUploadError("name the Hub repo as ORG/NAME (--repo-id or REPO_ID)")
    if settings.hf_token is None or not settings.hf_token.get_secret_value():
        raise HubUploadError("no Hub token: set HF_TOKEN to a token with write access")


def upload_to_hub(folder: Path, settings: PublishSettings, commit_message: str) -> str:
    """Create ``settings.repo_id`` if needed and upload ``folder`` to its root.

    Returns the commit's URL.

    Raises:
        HubUploadError: no token or repo id, or the Hub's error (status and message).
    """
    from huggingface_hub import HfApi

    check_hub_settings(settings)
    assert settings.repo_id is not None and settings.hf_token is not None  # checked above
    api = HfApi(endpoint=(settings.hf_endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                token=settings.hf_token.get_secret_value())
    try:
        api.create_repo(settings.repo_id, repo_type="model", private=settings.private,
                        exist_ok=True)
        commit = api.upload_folder(repo_id=settings.repo_id, folder_path=folder,
                                   repo_type="model", revision=settings.revision,
                                   commit_message=commit_message)
    except Exception as error:
        # The Hub's refusals (HfHubHTTPError), invalid card metadata (ValueError) and transport
        # errors, whose classes depend on the HTTP library the installed huggingface_hub uses.
        raise HubUploadError(f"upload to {api.endpoint}/{settings.repo_id} failed: "
                             f"{type(error).__name__}: {error}") from error
    return str(commit.commit_url)
