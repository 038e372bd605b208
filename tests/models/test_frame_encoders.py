import pytest
import torch

from cpc.models.encoders import (FrameEncoder, FrameEncoderConfig, ImageEncoder, ImageEncoderConfig,
                                 standardize_frames)


def frames(batch=2, time=6, size=32, channels=1):
    return torch.randint(0, 256, (batch, time, size, size, channels), dtype=torch.uint8)


@pytest.mark.parametrize("grid", [1, 2])
@pytest.mark.parametrize("pool, dim", [("mean", 128), ("flatten", 96), ("both", 96 + 128)])
def test_frame_encoder_shapes(grid, pool, dim):
    encoder = FrameEncoder(FrameEncoderConfig(grid=grid, pool=pool, dim=96))
    out = encoder(standardize_frames(frames()))
    assert out.shape == ((2, 6, dim) if grid == 1 else (2, 6, 4, dim)) and encoder.dim == dim


def test_flatten_pooling_sees_where_things_are_and_mean_pooling_does_not():
    config = FrameEncoderConfig(image=ImageEncoderConfig(in_channels=1, channels=(8,), strides=(1,), norm="none"))
    flat = FrameEncoder(config).eval()
    mean = FrameEncoder(FrameEncoderConfig(image=config.image, pool="mean"))
    mean.image.load_state_dict(flat.image.state_dict())
    x = torch.zeros(1, 2, 16, 16, 1)
    x[0, 0, 2:6, 2:6] = 1.0
    x[0, 1, 9:13, 9:13] = 1.0  # the same square, moved (away from the zero-padded border)
    assert torch.allclose(mean(x)[0, 0], mean(x)[0, 1], atol=1e-6)
    assert not torch.allclose(flat(x)[0, 0], flat(x)[0, 1], atol=1e-3)
    both = FrameEncoder(FrameEncoderConfig(image=config.image, pool="both"))
    both.load_state_dict(flat.state_dict())  # the same trunk and projection
    torch.testing.assert_close(both(x), torch.cat([flat(x), mean(x)], dim=-1))


def test_each_frame_is_encoded_on_its_own():
    encoder = FrameEncoder(FrameEncoderConfig(grid=2)).eval()  # eval: BatchNorm statistics would couple frames
    x = standardize_frames(frames())
    changed = x.clone()
    changed[:, 3] = torch.randn_like(changed[:, 3])
    a, b = encoder(x), encoder(changed)
    assert torch.equal(a[:, :3], b[:, :3]) and torch.equal(a[:, 4:], b[:, 4:])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_grid_cells_pool_their_own_region():
    """With a grid, cell (row, col) sees only its quarter of the frame (the trunk's receptive field aside)."""
    config = FrameEncoderConfig(image=ImageEncoderConfig(in_channels=1, channels=(8,), strides=(1,), norm="none"),
                                grid=2)
    encoder = FrameEncoder(config).eval()
    x = torch.zeros(1, 1, 16, 16, 1)
    y = x.clone()
    y[0, 0, 12:, 12:] = 5.0  # bottom-right quarter only, away from the other cells' borders
    a, b = encoder(x)[0, 0], encoder(y)[0, 0]
    assert torch.equal(a[:3], b[:3]) and not torch.allclose(a[3], b[3])


def test_standardize_frames_is_per_frame():
    x = frames(time=3).float()
    x[:, 2] = x[:, 2] * 0.1 + 7  # another frame's brightness must not change this frame's output
    out = standardize_frames(x)
    assert torch.allclose(out.flatten(2).mean(-1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(out.flatten(2).std(-1, unbiased=False), torch.ones(2, 3), atol=1e-4)
    assert torch.allclose(standardize_frames(x[:, :2]), out[:, :2])


@pytest.mark.parametrize("arch, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_small_image_stem_keeps_resolution(arch, dim):
    small = ImageEncoder(ImageEncoderConfig(arch=arch, cifar_stem=True))
    imagenet = ImageEncoder(ImageEncoderConfig(arch=arch, cifar_stem=False))
    images = torch.randn(2, 3, 32, 32)
    # 3x3 stride-1 stem, no max-pool: 32 -> 4 after the three stride-2 stages; the ImageNet stem gives 1x1.
    assert small.feature_map(images).shape == (2, dim, 4, 4)
    assert imagenet.feature_map(images).shape == (2, dim, 1, 1)
    assert small(images).shape == (2, dim) and small.dim == dim
    first = small.trunk[0]
    assert first.kernel_size == (3, 3) and first.stride == (1, 1) and isinstance(small.trunk[3], torch.nn.Identity)


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(ValueError, match="unknown image encoder arch 'vgg'"):
        ImageEncoder(ImageEncoderConfig(arch="vgg"))
    with pytest.raises(ValueError, match="same length"):
        ImageEncoder(ImageEncoderConfig(channels=(8, 16), strides=(2,)))
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) images; got shape \(2, 1, 8, 8\)"):
        ImageEncoder()(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(batch, time, height, width, channels\); got shape \(2, 32, 32, 1\)"):
        FrameEncoder()(torch.randn(2, 32, 32, 1))
    with pytest.raises(ValueError, match="unknown frame pooling 'max'"):
        FrameEncoder(FrameEncoderConfig(pool="max"))
    with pytest.raises(ValueError, match="grid must be >= 1"):
        FrameEncoder(FrameEncoderConfig(grid=0))
