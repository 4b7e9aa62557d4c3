"""Feature spaces of the hull stage: wavelets, hidden layers, random points, the small CNN."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from gisweep import GisweepError
from gisweep.models import build_mlp
from gisweep.resnet import ResNet20, load_resnet, prepool_side, resnet_features, save_resnet
from gisweep.resnet_features import fit_resnet
from gisweep.spaces import (check_space, features, hidden_features, image_shape, image_side, parse_space,
                            random_points, wavelet_features, wavelet_level)


def images(n, side, seed=0):
    return np.random.default_rng(seed).random((n, side * side)).astype(np.float32)


# ----------------------------------------------------------------------------- wavelets


@pytest.mark.parametrize("wavelet,side,level,full,subset", [
    ("haar", 28, 2, 784, 49 + 3 * 49),  # 28 = 4 * 7: two orthogonal levels, cA 7x7
    ("db4", 28, 2, 784, 49 + 3 * 49),
    ("haar", 14, 1, 196, 49 + 3 * 49),  # one level: subset of 2 entries = everything
    ("haar", 8, 3, 64, 1 + 3 * 1),  # cA 1x1 plus the coarsest details 1x1
])
def test_wavelet_shapes(wavelet, side, level, full, subset):
    x = images(5, side)
    assert wavelet_level(side, wavelet) == level
    assert wavelet_features(x, wavelet).shape == (5, full)
    assert wavelet_features(x, wavelet, subset_levels=2).shape == (5, subset)
    approx = (side // 2**level) ** 2
    assert wavelet_features(x, wavelet, subset_levels=1).shape == (5, approx)


@pytest.mark.parametrize("wavelet", ["haar", "db4"])
def test_full_orthogonal_transform_keeps_distances(wavelet):
    """Parseval: with periodization and a side divisible by 2^level the transform is orthogonal."""
    x = images(12, 28, seed=1)
    w = wavelet_features(x, wavelet)
    np.testing.assert_allclose(cdist(w, w), cdist(x.astype(np.float64), x.astype(np.float64)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), np.linalg.norm(x.astype(np.float64), axis=1), rtol=1e-12)
    # the subset is a projection: never longer
    s = wavelet_features(x, wavelet, subset_levels=2)
    assert np.all(cdist(s, s) <= cdist(w, w) + 1e-12)


def test_haar_subset_is_the_pooled_image():
    """At 28x28, level 2: approximation + coarsest details span the level-1 approximation, i.e. the 14x14
    average-pooled image times 2 (orthonormal Haar): distances are twice the pooled images' distances."""
    from gisweep.datasets import average_pool

    x = images(10, 28, seed=4)
    sub = wavelet_features(x, "haar", subset_levels=2)
    pooled = average_pool(x.reshape(10, 28, 28).astype(np.float64), 14).reshape(10, -1)
    np.testing.assert_allclose(cdist(sub, sub), 2 * cdist(pooled, pooled), atol=1e-9)


def test_haar_coefficients_by_hand():
    """One Haar level on 2x2 blocks: approximation = block sum / 2, computed here without PyWavelets."""
    x = images(3, 4, seed=2)
    w = wavelet_features(x, "haar", level=1)  # [3, 16]: cA (2x2) then cH, cV, cD (2x2 each)
    blocks = x.astype(np.float64).reshape(3, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4)  # [n, bi, bj, 2, 2]
    np.testing.assert_allclose(w[:, :4], blocks.sum((3, 4)).reshape(3, 4) / 2, atol=1e-12)
    # the three detail bands hold +-(a +- b +- c +- d) / 2 in some order: their squares sum to the rest
    detail_energy = (w[:, 4:] ** 2).sum(1)
    np.testing.assert_allclose(detail_energy, (x.astype(np.float64) ** 2).sum(1) - (w[:, :4] ** 2).sum(1), atol=1e-12)


def test_non_orthogonal_mode_changes_distances():
    """The check above can fail: symmetric extension of db4 is redundant and distorts distances."""
    x = images(6, 28, seed=3)
    w = wavelet_features(x, "db4", mode="symmetric", level=2)
    assert w.shape[1] > 784
    assert not np.allclose(cdist(w, w), cdist(x.astype(np.float64), x.astype(np.float64)), atol=1e-6)


def test_wavelet_errors():
    with pytest.raises(GisweepError, match="not a square grey or RGB image"):
        wavelet_features(np.zeros((2, 10)), "haar")
    with pytest.raises(GisweepError, match="subset_levels"):
        wavelet_features(images(2, 8), "haar", subset_levels=0)
    with pytest.raises(GisweepError, match="not a discrete PyWavelets wavelet"):
        parse_space("wavelet_nope")


# ----------------------------------------------------------------------------- hidden layers


def test_hidden_features_equal_manual_forward_pass():
    gen = torch.Generator().manual_seed(0)
    model = build_mlp("2x5", 6, 3, init_scale=0.8, generator=gen)
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.bias.uniform_(-0.5, 0.5, generator=gen)
    x = np.random.default_rng(0).random((7, 6))
    W1, b1 = model[0].weight.detach().double().numpy(), model[0].bias.detach().double().numpy()
    W2, b2 = model[2].weight.detach().double().numpy(), model[2].bias.detach().double().numpy()
    h1 = np.maximum(x @ W1.T + b1, 0)
    h2 = np.maximum(h1 @ W2.T + b2, 0)
    np.testing.assert_allclose(hidden_features(model, x, 1), h1, atol=1e-6)
    np.testing.assert_allclose(hidden_features(model, x, 2), h2, atol=1e-6)
    np.testing.assert_allclose(features("hidden_2x5_real_s0_l2", x, model=model), h2, atol=1e-6)
    assert (h1 == 0).any() and (h1 > 0).any()  # the ReLU is exercised
    with pytest.raises(GisweepError, match="2 hidden layer"):
        hidden_features(model, x, 3)
    with pytest.raises(GisweepError, match="needs a model"):
        features("hidden_2x5_real_s0_l1", x)


# ----------------------------------------------------------------------------- random points, names


def test_random_points_in_domain_and_seeded():
    r = random_points(2000, 49, seed=3)
    assert r.shape == (2000, 49) and r.dtype == np.float32
    assert r.min() >= 0 and r.max() <= 1
    assert r.min() < 0.01 and r.max() > 0.99  # fills the domain
    assert abs(r.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(r, random_points(2000, 49, seed=3))
    assert not np.array_equal(r, random_points(2000, 49, seed=4))
    assert random_points(0, 49, 0).shape == (0, 49)


def test_parse_space_names():
    assert parse_space("pixels") == {"kind": "pixels"}
    assert parse_space("wavelet_db4_subset") == {"kind": "wavelet", "wavelet": "db4", "subset": True}
    assert parse_space("wavelet_bior1.3") == {"kind": "wavelet", "wavelet": "bior1.3", "subset": False}
    assert parse_space("hidden_3x128_random_s2_l3") == {"kind": "hidden", "arch": "3x128", "labels": "random",
                                                        "seed": 2, "layer": 3}
    assert parse_space("resnet_prepool_s1") == {"kind": "resnet", "layer": "prepool", "seed": 1}
    assert parse_space("resnet_pool_s0") == {"kind": "resnet", "layer": "pool", "seed": 0}
    for bad in ["pixel", "hidden_3x128_real_l1", "resnet", "resnet_s0", "hidden_3x128_fake_s0_l1", ""]:
        with pytest.raises(GisweepError, match="unknown space"):
            parse_space(bad)
    assert image_side(49) == 7 and image_shape(49) == (7, 1) and image_shape(32 * 32 * 3) == (32, 3)


# ----------------------------------------------------------------------------- RGB wavelets


@pytest.mark.parametrize("wavelet", ["haar", "db4"])
def test_rgb_wavelets_are_per_channel(wavelet):
    """Each channel transformed on its own; entries ordered band by band with the channels together; the
    subset keeps the coarse levels of every channel; full orthogonal coefficients keep distances."""
    import pywt

    rng = np.random.default_rng(3)
    x = rng.random((5, 16 * 16 * 3))  # rows H, W, C
    full = wavelet_features(x, wavelet)
    sub = wavelet_features(x, wavelet, subset_levels=2)
    assert full.shape == (5, 768)
    planes = x.reshape(5, 16, 16, 3).transpose(0, 3, 1, 2)
    lev = wavelet_level(16, wavelet)
    for c in range(3):
        coeffs = pywt.wavedec2(planes[:, c], wavelet, mode="periodization", level=lev)
        a = coeffs[0].shape[-1] ** 2
        np.testing.assert_allclose(full[:, c * a:(c + 1) * a], coeffs[0].reshape(5, -1), atol=1e-12)
        h = coeffs[1][0].reshape(5, -1)  # first detail band, channel c: after the 3 channels' approximations
        np.testing.assert_allclose(full[:, 3 * a + c * h.shape[1]:3 * a + (c + 1) * h.shape[1]], h, atol=1e-12)
    a, d = coeffs[0].shape[-1] ** 2, coeffs[1][0].shape[-1] ** 2
    assert sub.shape == (5, 3 * (a + 3 * d))
    np.testing.assert_allclose(sub, full[:, :sub.shape[1]])
    np.testing.assert_allclose(cdist(full, full), cdist(x, x), atol=1e-10)


def test_grey_wavelets_unchanged_by_the_channel_axis():
    x = images(4, 8, seed=2).astype(np.float64)
    import pywt

    coeffs = pywt.wavedec2(x.reshape(4, 8, 8), "haar", mode="periodization", level=3)
    direct = np.concatenate([coeffs[0].reshape(4, -1)] + [d.reshape(4, -1) for lv in coeffs[1:] for d in lv], axis=1)
    np.testing.assert_array_equal(wavelet_features(x, "haar"), direct)


# ----------------------------------------------------------------------------- ResNet-20


@pytest.fixture
def one_thread():
    """Small convolutions run far slower with several threads on a busy machine; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_resnet20_architecture():
    """3 stages x 3 basic blocks, 16/32/64 channels, stride-1 stem, batch norm: 19 convs + 1 linear layer."""
    m = ResNet20(32, channels=3)
    convs = [c for name, c in m.named_modules() if isinstance(c, torch.nn.Conv2d) and ".short" not in name]
    assert len(convs) == 19 and isinstance(m.head, torch.nn.Linear)
    assert m.stem[0].stride == (1, 1) and m.stem[0].in_channels == 3 and m.stem[0].out_channels == 16
    assert [len(stage) for stage in m.stages] == [3, 3, 3]
    assert [stage[0].conv2.out_channels for stage in m.stages] == [16, 32, 64]
    assert [stage[0].conv1.stride for stage in m.stages] == [(1, 1), (2, 2), (2, 2)]
    assert sum(isinstance(b, torch.nn.BatchNorm2d) for b in m.modules()) == 19 + 2  # + two projections
    m.eval()
    x = torch.rand(2, 32 * 32 * 3)
    assert m.prepool(x).shape == (2, 64, 8, 8) and m.pooled(x).shape == (2, 64)
    assert ResNet20(28).eval().prepool(torch.rand(2, 784)).shape == (2, 64, 7, 7)  # 3,136 features at 28x28
    assert [prepool_side(s) for s in (32, 28, 8, 7, 4)] == [8, 7, 2, 2, 1]


def test_resnet_rgb_layout_is_channels_last():
    """Rows are H, W, C (data.parquet's layout): channel c of pixel (r, q) sits at (r * side + q) * C + c."""
    m = ResNet20(4, channels=3, width=2)
    x = np.arange(4 * 4 * 3, dtype=np.float32)[None]
    img = m.images(torch.as_tensor(x))  # [1, 3, 4, 4]
    assert img[0, 2, 1, 3] == (1 * 4 + 3) * 3 + 2


def test_resnet_deterministic_and_features(tmp_path, one_thread):
    x = images(60, 8, seed=5)
    y = np.arange(60) % 3
    m1, h1 = fit_resnet(x, y, side=8, seed=1, epochs=2, batch_size=16, width=4, log_every=1e9)
    m2, _ = fit_resnet(x, y, side=8, seed=1, epochs=2, batch_size=16, width=4, log_every=1e9)
    m3, _ = fit_resnet(x, y, side=8, seed=2, epochs=2, batch_size=16, width=4, log_every=1e9)
    f1 = resnet_features(m1, x, "pool")
    assert f1.shape == (60, 16) and f1.dtype == np.float64  # 4 width
    np.testing.assert_array_equal(f1, resnet_features(m2, x, "pool"))
    assert not np.array_equal(f1, resnet_features(m3, x, "pool"))
    assert len(h1) == 2
    pre = resnet_features(m1, x, "prepool")
    assert pre.shape == (60, 16 * 2 * 2)
    # pooled = the global average of the pre-pool maps (flattened C, H, W), and feeds the classifier
    np.testing.assert_allclose(pre.reshape(60, 16, 4).mean(2), f1, atol=1e-6)
    with torch.no_grad():
        xt = torch.as_tensor(x)
        h = m1.stages(m1.stem(xt.reshape(-1, 1, 8, 8)))
        np.testing.assert_allclose(pre, h.flatten(1).double().numpy(), atol=1e-6)
        np.testing.assert_allclose(m1.head(torch.as_tensor(f1, dtype=torch.float32)).numpy(), m1(xt).numpy(),
                                   atol=1e-5)
    np.testing.assert_allclose(resnet_features(m1, x, "prepool", batch=7), pre, atol=1e-6)
    path = tmp_path / "resnet.pt"
    save_resnet(m1, path, n_classes=3, meta={"train_acc": 0.5})
    loaded, meta = load_resnet(path, with_meta=True)
    np.testing.assert_array_equal(resnet_features(loaded, x, "pool"), f1)
    assert meta == {"train_acc": 0.5}
    with pytest.raises(GisweepError, match="expects 8x8x1"):
        resnet_features(m1, images(2, 4), "pool")


def test_resnet_on_rgb_images(one_thread):
    rng = np.random.default_rng(0)
    x = rng.random((20, 8 * 8 * 3)).astype(np.float32)
    m, _ = fit_resnet(x, np.arange(20) % 2, side=8, channels=3, seed=0, epochs=1, batch_size=8, width=2,
                      log_every=1e9)
    assert features("resnet_prepool_s0", x, model=m).shape == (20, 8 * 2 * 2)
    assert features("resnet_pool_s0", x, model=m).shape == (20, 8)


def test_resnet_file_errors(tmp_path):
    with pytest.raises(GisweepError, match="nope.pt: ResNet model file not found"):
        load_resnet(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(GisweepError, match="bad.pt: not a gisweep ResNet"):
        load_resnet(bad)


def test_space_shape_checks():
    assert check_space("wavelet_haar", 8 * 8 * 3)["kind"] == "wavelet"
    with pytest.raises(GisweepError, match="not a square grey or RGB image"):
        check_space("wavelet_haar", 50)
    with pytest.raises(GisweepError, match="too small for the ResNet"):
        check_space("resnet_pool_s0", 3 * 3)
    with pytest.raises(GisweepError, match="too small for a wavelet"):
        check_space("wavelet_haar", 1)
    assert check_space("pixels", 50) == {"kind": "pixels"}  # any rows are pixels


def test_non_finite_features_name_the_space():
    import copy

    model = build_mlp("1x4", 4, 2, init_scale=1.0, generator=torch.Generator().manual_seed(0))
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken[0].weight[0, 0] = float("inf")
    with pytest.raises(GisweepError, match="space 'hidden_1x4_real_s0_l1'.*NaN or infinite"):
        features("hidden_1x4_real_s0_l1", np.ones((3, 4), np.float32), model=broken)


def test_no_import_cycle_between_spaces_and_the_cnn():
    """spaces uses the CNN (gisweep.resnet); training it (resnet_features) uses spaces; nothing goes back."""
    from gisweep.code_inputs import closure_files

    def names(module):
        return {p.stem for p in closure_files(module)}

    assert "resnet" in names("gisweep.spaces")
    assert not {"spaces", "resnet_features"} & names("gisweep.resnet")
    assert "resnet_features" not in names("gisweep.spaces")
    assert {"spaces", "resnet"} <= names("gisweep.resnet_features")
