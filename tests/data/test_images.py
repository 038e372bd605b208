import io
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from cpc.data.images import ImageDataConfig, image_stream
from cpc.data.shards import write_shards


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def two_views(image):
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    return [tensor, tensor.flip(-1)]


@pytest.fixture
def image_shards(tmp_path):
    samples = [{"__key__": f"img{i}", "png": png(np.full((8, 8, 3), i * 20, np.uint8)), "cls": str(i % 3).encode(),
                "json": b"{}"} for i in range(10)]
    samples.append({"__key__": "broken", "png": b"not an image", "cls": b"1", "json": b"{}"})
    write_shards(iter(samples), str(tmp_path / "img-%03d.tar"), max_count=4, progress=False)
    return tmp_path


def test_views_classes_and_skips(image_shards):
    batches = list(image_stream(ImageDataConfig(shards=str(image_shards), batch_size=5), two_views, train=False))
    views = torch.cat([b["views"] for b in batches])
    assert views.shape == (10, 2, 3, 8, 8)
    assert torch.equal(views[:, 1], views[:, 0].flip(-1))
    classes = torch.cat([b["targets"]["class"] for b in batches])
    brightness = (views[:, 0].mean(dim=(1, 2, 3)) * 255 / 20).round().long()
    assert torch.equal(classes, brightness % 3)  # each image keeps its own class
    skipped = {reason: n for b in batches for reason, (n, _) in b["skipped"].items()}
    assert skipped == {"unreadable image or class": 1}


def test_training_stream_is_endless(image_shards):
    stream = image_stream(ImageDataConfig(shards=str(image_shards), batch_size=4, shuffle_samples=8), two_views, True)
    assert len(list(itertools.islice(stream, 7))) == 7


@pytest.mark.parametrize("recipe", ["simclr", "byol"])
def test_published_views_on_real_photos(recipe):
    """scikit-image's bundled colour photos through every augmentation path (jitter, grayscale, blur, solarize)."""
    skimage_data = pytest.importorskip("skimage.data")
    from cpc.data.images import TwoViews

    torch.manual_seed(0)
    photo = Image.fromarray(skimage_data.astronaut())
    views = TwoViews(recipe, size=32, blur=True)
    pairs = [views(photo) for _ in range(40)]
    assert all(v.shape == (3, 32, 32) and v.dtype == torch.float32 for pair in pairs for v in pair)
    grey = sum(bool(torch.allclose(v[0], v[1]) and torch.allclose(v[1], v[2])) for pair in pairs for v in pair)
    assert 0 < grey < 40  # grayscale p 0.2 over 80 views
    different = [not torch.allclose(a, b) for a, b in pairs]
    assert all(different)  # two independent crops of one photo
    with pytest.raises(ValueError, match="unknown view recipe 'dino'"):
        TwoViews("dino")


class MirrorViews:
    """A toy view recipe: the image as it is, and mirrored."""

    name = "mirror"

    @staticmethod
    def transforms(size, blur, jitter_strength, mean, std):
        plain = lambda image: torch.from_numpy(np.array(image.resize((size, size)))).permute(2, 0, 1).float()
        return [plain, lambda image: plain(image).flip(-1)]


def test_a_view_recipe_registered_here_is_chosen_by_name():
    from cpc.data.images import VIEWS, TwoViews, register_views

    register_views(MirrorViews)
    try:
        photo = Image.fromarray(np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3))
        first, second = TwoViews("mirror", size=4)(photo)
        assert torch.equal(first, torch.from_numpy(np.array(photo)).permute(2, 0, 1).float())
        assert torch.equal(second, first.flip(-1))
        with pytest.raises(ValueError, match="a view recipe named 'mirror' is already registered"):
            register_views(MirrorViews)
    finally:
        del VIEWS["mirror"]
    with pytest.raises(ValueError, match=r"unknown view recipe 'mirror'; choose one of \('simclr', 'byol'\)"):
        TwoViews("mirror")
