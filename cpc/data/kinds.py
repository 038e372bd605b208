"""The data kinds a method can read, by name: each kind's config class (a recipe's `data:` section), its check and
its stream. A method names its kind (cpc.methods.METHODS); a new kind is its stream module plus one line here.

    kind = DATA_KINDS["audio"]
    data = kind.config(shards="data/shards")
    stream = kind.stream(data, train=True, start=0, segment=0, sample_rate=16000, hop=160)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, NamedTuple

from cpc.config import Rules
from cpc.data.audio import AudioDataConfig, audio_stream
from cpc.data.images import VIEWS, ImageDataConfig, TwoViews, image_stream
from cpc.data.stages import Stream, StreamConfig
from cpc.data.video import VideoDataConfig, video_stream


class DataKind(NamedTuple):
    config: type[StreamConfig]
    check: Callable[[Any, Rules], None]  # (data section, its rules): a ConfigError for what cannot work
    # (data section, train=, start=, segment=, and the method's stream options) -> the Stream; `data.shards` may be
    # a ShardSource the run resolved already
    stream: Callable[..., Stream]


def run_audio_stream(data: AudioDataConfig, train: bool, start: int = 0, segment: int = 0, **options) -> Stream:
    """A run's audio stream: training windows grouped as `data.group` says; evaluation windows ungrouped."""
    return audio_stream(data if train else replace(data, group=None), train=train, start=start, segment=segment,
                        **options)


def check_images(data: ImageDataConfig, rules: Rules) -> None:
    """A ConfigError for the first setting of an image data section that cannot work."""
    data.check(rules)
    rules.at_least(1, "size")
    rules.one_of("views", ("", *VIEWS))  # read at check time: a recipe registered later counts


def run_image_stream(data: ImageDataConfig, train: bool, start: int = 0, segment: int = 0, *,
                     views: str) -> Stream:
    """A run's image stream: two views per image, by `data.views` or else the method's own `views`."""
    transform = TwoViews(data.views or views, data.size, data.blur, data.jitter_strength)
    return image_stream(data, transform, train=train, start=start, segment=segment)


DATA_KINDS: dict[str, DataKind] = {
    "audio": DataKind(AudioDataConfig, AudioDataConfig.check, run_audio_stream),
    "video": DataKind(VideoDataConfig, VideoDataConfig.check, video_stream),
    "images": DataKind(ImageDataConfig, check_images, run_image_stream),
}
