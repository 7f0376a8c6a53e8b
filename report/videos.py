"""Source videos on the ranking pages (the original's ``visualizer.args.src_video_dir``).

As in the original, the page folder gets a ``videos`` symbolic link to the source folder and
players refer to ``videos/<file>``, so the pages play the videos from ``file://`` and from
``python3 -m http.server`` (which follows the link). A video is found as
``<src_video_dir>/<video id><suffix>`` for a suffix in :data:`VIDEO_SUFFIXES`; videos without a
file, and every video when the folder does not exist, are shown by id and captions only.
"""
from __future__ import annotations

from pathlib import Path

from report.html_page import esc, href

VIDEO_SUFFIXES = (".mp4", ".webm", ".ogv", ".ogg", ".m4v", ".mov")
LINK_NAME = "videos"


def link_videos(page_dir: Path, src_video_dir: str | Path | None, video_ids: list[str]) -> dict[str, str]:
    """Relative URLs (from ``page_dir``) of the videos of ``video_ids`` found in ``src_video_dir``.

    Creates or updates the ``page_dir/videos`` link when at least one video is found; a
    ``videos`` entry that is not a link is used as it is.
    """
    if src_video_dir is None or not Path(src_video_dir).is_dir():
        return {}
    source = Path(src_video_dir).resolve()
    files: dict[str, str] = {}
    for path in sorted(source.iterdir()):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            files.setdefault(path.stem, path.name)
    found = {vid: f"{LINK_NAME}/{files[vid]}" for vid in video_ids if vid in files}
    link = Path(page_dir) / LINK_NAME
    if found and link.is_symlink() and link.resolve() != source:
        link.unlink()
    if found and not link.is_symlink() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source, target_is_directory=True)
    return found


def video_tag(url: str) -> str:
    """An HTML5 player for the relative ``url`` that loads nothing until played."""
    return f"<video controls preload=\"none\" src=\"{href(url)}\"></video>"


def video_cell(video_id: str, video_urls: dict[str, str]) -> str:
    """A video's id, followed by its player when ``video_urls`` has its file."""
    player = video_tag(video_urls[video_id]) if video_id in video_urls else ""
    return f"<span class=\"vid\">{esc(video_id)}</span>{player}"
