"""Image policies in the policy runner: frames validated on arrival, aligned by capture stamp, stale = hold."""

from __future__ import annotations

import numpy as np
import pytest

from cdp_policy.camera_frames import CameraFrameError, CameraFrames, parse_camera_topics
from cdp_policy.observations import ObservationError
from cdp_policy.runner import PolicyConfig, PolicyRunner, PolicyStartError
from cdp_ros_common.names import AGENTVIEW_IMAGE, FINGER_NAMES, JOINT_NAMES

HOME = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]
SIZE = 32


def picture(seed: int, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def send(frames, cam: str, t: float, img: np.ndarray, encoding: str = "rgb8", pad: int = 0) -> None:
    h, w, _ = img.shape
    rows = np.zeros((h, 3 * w + pad), dtype=np.uint8)
    rows[:, : 3 * w] = (img if encoding == "rgb8" else img[:, :, ::-1]).reshape(h, 3 * w)
    frames.update(cam, t, h, w, encoding, 3 * w + pad, rows.tobytes())


# --- the frame store ------------------------------------------------------------------------
def test_frames_are_checked_on_arrival_naming_camera_and_topic():
    f = CameraFrames(["agentview"], (SIZE, SIZE), 0.3, {"agentview": "/cam/a"})
    img = picture(0)
    send(f, "agentview", 1.0, img, "bgr8", pad=4)  # BGR with padded rows: stored as plain RGB
    got = f.at(1.0, 1.05)
    assert got.reason == "" and got.frames.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_array_equal(got.frames[0], img)
    with pytest.raises(CameraFrameError, match=r"'agentview' \(/cam/a\): encoding 'mono8'"):
        f.update("agentview", 1.1, SIZE, SIZE, "mono8", SIZE, bytes(SIZE * SIZE))
    with pytest.raises(CameraFrameError, match=r"'agentview' \(/cam/a\): 64x48 frames; the model was trained on 32x32"):
        send(f, "agentview", 1.1, picture(1, 48, 64))  # another aspect ratio: never stretched
    big = np.kron(picture(2), np.ones((4, 4, 1), dtype=np.uint8))  # 128x128, each pixel a 4x4 block
    send(f, "agentview", 1.2, big)  # the same aspect ratio: resized to the model's size
    np.testing.assert_array_equal(f.at(1.2, 1.2).frames[0], picture(2))
    with pytest.raises(CameraFrameError, match="bytes, expected step x height"):
        f.update("agentview", 1.1, SIZE, SIZE, "rgb8", 3 * SIZE, bytes(10))
    with pytest.raises(CameraFrameError, match="without a capture stamp"):
        send(f, "agentview", 0.0, img)
    with pytest.raises(CameraFrameError, match="not a camera of this model"):
        send(f, "wrist", 1.1, img)
    assert f.refused == 4  # the foreign camera is not counted against agentview


def test_the_frame_closest_to_the_arm_state_is_taken_and_a_stale_one_refused():
    f = CameraFrames(["agentview"], (SIZE, SIZE), 0.3, {"agentview": "/cam/a"})
    assert "no frame yet from camera 'agentview' (/cam/a)" in f.at(1.0, 1.0).reason
    for i, t in enumerate([1.00, 1.10, 1.20, 1.30]):
        send(f, "agentview", t, picture(i))
    # the state was sampled at 1.12: the 1.10 frame, not the newest
    np.testing.assert_array_equal(f.at(1.12, 1.31).frames[0], picture(1))
    stale = f.at(1.30, 1.75)
    assert stale.frames is None and "stale camera" in stale.reason and "/cam/a" in stale.reason
    assert stale.ages["agentview"] == pytest.approx(0.45)


def test_camera_topics_are_parsed_strictly():
    assert parse_camera_topics(["agentview=/a", "", "wrist=/b"]) == {"agentview": "/a", "wrist": "/b"}
    for bad in (["agentview"], ["agentview=a"], ["=/a"], ["x=/a", "x=/b"]):
        with pytest.raises(CameraFrameError):
            parse_camera_topics(bad)


# --- the runner with a real (tiny) image policy ----------------------------------------------
def make(model, **kw) -> PolicyRunner:
    return PolicyRunner(PolicyConfig(model_path=str(model), seed=0, dispersion_samples=2, **kw))


def feed_state(r: PolicyRunner, t: float) -> None:
    r.obs.update_joint_state(t, JOINT_NAMES + FINGER_NAMES, [*HOME, 0.04, 0.04])
    r.obs.update_ee_pose(t, [0.31, 0.0, 0.49], [1.0, 0.0, 0.0, 0.0])
    r.obs.update_object_pose(t, [0.5, 0.1, 0.3], [0.0, 0.0, 0.0, 1.0])


def test_a_model_whose_camera_the_node_lacks_is_refused_at_start(image_model):
    with pytest.raises(PolicyStartError, match=r"cameras \['agentview'\], which the policy node does not deliver"):
        make(image_model, camera_topics=())
    with pytest.raises(PolicyStartError, match="expected 'camera=/topic'"):
        make(image_model, camera_topics=("agentview:/a",))
    r = make(image_model)
    assert r.cameras == ["agentview"] and r.camera_topics["agentview"] == AGENTVIEW_IMAGE


def test_the_chunk_comes_from_the_frames_it_was_given(image_model):
    from cdp_core.runtime import OnnxPolicy

    r = make(image_model)
    frames = {}
    for k, t in enumerate([10.0, 10.1]):  # two ticks: the history holds two frame sets
        feed_state(r, t)
        frames[t] = picture(10 + k)
        send(r.obs.cameras, "agentview", t, frames[t])
        d = r.tick(t)
    assert d is None  # the second tick is mid-chunk
    # re-run the first tick's inference by hand from the same inputs: the runner passed the frames
    r2 = make(image_model)
    feed_state(r2, 10.0)
    send(r2.obs.cameras, "agentview", 10.0, frames[10.0])
    d2 = r2.tick(10.0)
    assert d2 is not None and len(d2.positions)
    ref = OnnxPolicy(image_model)
    images = np.broadcast_to(frames[10.0], (2, 2, 1, SIZE, SIZE, 3)).copy()  # first frame repeated
    noise = np.random.default_rng(0).standard_normal((2, *ref.noise_shape), dtype=np.float32)
    obs = np.broadcast_to(r2.obs.sample(10.0).history, (2, *ref.obs_shape)).copy()
    want = ref(obs, noise, images)
    np.testing.assert_allclose(r2.last_actions, want, rtol=0, atol=2e-5)  # ORT thread count differs
    other = ref(obs, noise, 255 - images)
    assert np.abs(want - other).max() > 1e-3, "the tiny model ignores its images: the comparison means nothing"
    assert r2.diagnostics()["image_age_s.agentview"] == pytest.approx(0.0)


def test_a_stalled_camera_refuses_the_tick_and_names_the_camera(image_model):
    r = make(image_model)
    feed_state(r, 20.0)
    send(r.obs.cameras, "agentview", 20.0, picture(0))
    assert r.tick(20.0) is not None
    for t in (20.1, 20.2, 20.3, 20.4):  # the arm keeps publishing; the camera stopped at 20.0
        feed_state(r, t)
        r.tick(t)
    assert r.stats.last_reason.startswith("stale camera") and AGENTVIEW_IMAGE in r.stats.last_reason
    assert r.diagnostics()["image_age_s.agentview"] == pytest.approx(0.4)
    assert r.obs.history_len == 0  # a gap: the next good tick starts a fresh history
    send(r.obs.cameras, "agentview", 20.5, picture(1))
    feed_state(r, 20.5)
    assert r.tick(20.5) is not None  # the camera came back: the next tick plans at once


def test_a_frame_for_a_low_dim_model_is_an_error(fr3_model):
    r = make(fr3_model)
    with pytest.raises(ObservationError, match="this model sees no camera"):
        r.obs.update_image("agentview", 1.0, SIZE, SIZE, "rgb8", 3 * SIZE, bytes(3 * SIZE * SIZE))
    assert r.cameras == [] and not any(k.startswith("image_age") for k in r.diagnostics())
