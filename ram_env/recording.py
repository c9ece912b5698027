"""Recording and watching episodes: tiled frames, GIFs, MP4 videos, and a policy playing in the window.

The helpers take a *policy*: a callable ``policy(obs, first) -> {"location": (N, 2) float32,
"label": (N,) int64}`` on a batch of ``N`` observations of a :class:`~ram_env.vector.GlimpseVectorEnv`
(``first`` is True on the first step of new episodes, so a recurrent policy can reset its state). On a task with
early answers (``answer="any_step"``) the action also has ``"stop": (N,)`` flags, passed on to the env.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

from ram_env import render, window

Policy = Callable[[dict, bool], dict]


def random_policy(action_space, seed: int | None = None) -> Policy:
    """A policy that looks at uniformly random places and guesses a uniformly random class.

    :param action_space: the single env's action space (``Dict(location=Box, label=Discrete)``; with other answer
        kinds ``label`` is ``MultiDiscrete`` (K labels, or a sum) or ``point`` a ``Box``)
    """
    rng = np.random.default_rng(seed)
    low = np.asarray(action_space["location"].low, dtype=np.float32)
    high = np.asarray(action_space["location"].high, dtype=np.float32)
    key = "point" if "point" in action_space.spaces else "label"
    answer = action_space[key]

    def policy(obs: dict, first: bool) -> dict:
        n = len(obs["location"])
        if key == "point":
            said = rng.uniform(low, high, size=(n, 2)).astype(np.float32)
        else:
            classes = getattr(answer, "nvec", getattr(answer, "n", None))
            said = rng.integers(0, classes, size=(n,) + np.shape(classes), dtype=np.int64)
        return {"location": rng.uniform(low, high, size=(n, 2)).astype(np.float32), key: said}

    return policy


def _act(policy: Policy, obs: dict, first: bool) -> dict:
    action = policy(obs, first)
    arrays = {"location": np.asarray(action["location"], dtype=np.float32)}
    if "point" in action:  # target="location": the answer is a point
        arrays["point"] = np.asarray(action["point"], dtype=np.float32)
    else:
        arrays["label"] = np.asarray(action["label"]).astype(np.int64)
    if "stop" in action:
        arrays["stop"] = np.asarray(action["stop"]).astype(np.int64)
    return arrays


def _single_policy(policy: Policy, obs: dict, first: bool) -> dict:
    """Call a batch policy on one observation; the action of that one env."""
    action = _act(policy, {k: np.asarray(v)[None] for k, v in obs.items()}, first)
    return {k: v[0] if v[0].shape else int(v[0]) for k, v in action.items()}


def record_episodes(vec_env, policy: Policy, indices=None) -> list[np.ndarray]:
    """Run one episode in every env of a ``GlimpseVectorEnv`` (``render_mode="rgb_array"``); return the tiled frames.

    One frame after the reset and one after every step until every env's episode has ended, so ``n_glimpses + 1``
    frames at most. An env whose episode ended early (``answer="any_step"``) keeps showing its answer: the env
    restarts it on a new image on the next step, which is not shown.

    :param indices: image indices, one per env (as ``reset(options={"indices": ...})``); None: random images
    """
    mode = getattr(vec_env, "render_mode", None)
    if mode != "rgb_array":
        raise ValueError(f"record_episodes needs a vector env made with render_mode='rgb_array', got {mode!r}")
    options = None if indices is None else {"indices": np.asarray(indices, dtype=np.int64)}
    obs, _ = vec_env.reset(options=options)
    env = vec_env.unwrapped
    tiles = [_frame(env, i) for i in range(env.num_envs)]
    frames = [render.tile(tiles)]
    ended = np.zeros(env.num_envs, dtype=bool)
    first = True
    for _ in range(env.task.n_glimpses):
        obs, _, terminated, truncated, _ = vec_env.step(_act(policy, obs, first))
        first = False
        for i in np.flatnonzero(~ended):  # the envs still in their first episode
            tiles[i] = _frame(env, i)
        ended |= np.asarray(env.xp.to_numpy(terminated | truncated), dtype=bool)  # numpy arrays or torch tensors
        frames.append(render.tile(tiles))
        if ended.all():
            break
    return frames


def _frame(vec_env, i: int) -> np.ndarray:
    """The frame of env ``i`` of a ``GlimpseVectorEnv``, as its ``render()`` draws it in the grid."""
    return render.draw_frame(vec_env.frame_state(i), vec_env.task.retina, vec_env.task.n_glimpses)


def save_gif(frames: list[np.ndarray], path, fps: float = 4, hold: float = 1.5, max_side: int | None = None) -> Path:
    """Write frames as an animated GIF that loops forever, holding the last frame ``hold`` extra seconds.

    :param max_side: shrink the frames (keeping their aspect) so that neither side exceeds this many pixels
    """
    from PIL import Image

    if not frames:
        raise ValueError("save_gif() needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    if max_side is not None and max(images[0].size) > max_side:
        ratio = max_side / max(images[0].size)
        size = (max(1, round(images[0].width * ratio)), max(1, round(images[0].height * ratio)))
        images = [im.resize(size, Image.Resampling.LANCZOS) for im in images]
    step_ms = int(round(1000 / fps))
    durations = [step_ms] * len(images)
    durations[-1] += int(round(1000 * hold))
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, disposal=1)
    return path


def record_gif(
    vec_env, policy: Policy, path, indices=None, fps: float | None = None, max_side: int | None = None
) -> Path:
    """Record one episode in every env of ``vec_env`` (tiled, e.g. 25 envs make a 5x5 grid) as a GIF at ``path``.

    :param max_side: shrink the GIF so that neither side exceeds this many pixels (smaller files)
    """
    frames = record_episodes(vec_env, policy, indices)
    fps = fps or vec_env.metadata.get("render_fps", 4)
    return save_gif(frames, path, fps, max_side=max_side)


def watch(env, policy: Policy, n_episodes: int = 10, indices=None, hold: float = 1.0) -> list[bool]:
    """Play episodes on a single env made with ``render_mode="human"``; stop early if the window is closed.

    :param indices: the image of each episode (``len(indices)`` episodes are played); None: ``n_episodes`` random ones
    :param hold: seconds to keep each episode's last frame (its answer) on screen
    :return: whether each finished episode was answered right
    """
    if env.render_mode != "human":
        raise ValueError(f"watch() needs an env made with render_mode='human', got {env.render_mode!r}")
    episodes = list(indices) if indices is not None else [None] * n_episodes
    results: list[bool] = []
    for index in episodes:
        obs, _ = env.reset(options=None if index is None else {"index": int(index)})
        first, terminated = True, False
        while not terminated and not env.unwrapped.window_closed:
            obs, _, terminated, truncated, info = env.step(_single_policy(policy, obs, first))
            first = False
        if env.unwrapped.window_closed:
            break
        results.append(bool(info["correct"]))
        if hold > 0 and not window.wait(hold):
            break
    return results


def _video_recorder(env, folder: Path, name_prefix: str, env_kwargs: dict):
    """Gymnasium's ``RecordVideo`` around ``env`` (made from its id if a string), recording every episode."""
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    if importlib.util.find_spec("moviepy") is None:
        raise gym.error.DependencyNotInstalled("recording videos needs moviepy: pip install -e '.[video]'")
    if isinstance(env, str):
        env = gym.make(env, render_mode="rgb_array", **env_kwargs)
    if env.render_mode != "rgb_array":
        raise ValueError(f"record_video() needs an env made with render_mode='rgb_array', got {env.render_mode!r}")
    fps = env.metadata.get("render_fps", 4)
    return RecordVideo(
        env, str(folder), episode_trigger=lambda _: True, name_prefix=name_prefix, fps=fps, disable_logger=True
    )


def record_video(
    env,
    policy: Policy,
    folder,
    n_episodes: int = 1,
    indices=None,
    name_prefix: str = "ram",
    hold: float = 1.0,
    **env_kwargs,
) -> list[Path]:
    """Record episodes as MP4 files in ``folder`` through Gymnasium's ``RecordVideo`` (needs moviepy).

    :param env: a single env made with ``render_mode="rgb_array"``, or a registered id to make one (with ``env_kwargs``)
    :param indices: the image of each episode; None: ``n_episodes`` random images
    :param hold: seconds the last frame (the answer) stays in each video
    :return: the video files written, one per episode
    """
    folder = Path(folder)
    before = set(folder.glob(f"{name_prefix}-episode-*.mp4")) if folder.is_dir() else set()
    recorder = _video_recorder(env, folder, name_prefix, env_kwargs)
    hold_frames = int(round(hold * recorder.frames_per_sec))
    episodes = list(indices) if indices is not None else [None] * n_episodes
    try:
        for index in episodes:
            obs, _ = recorder.reset(options=None if index is None else {"index": int(index)})
            first, terminated = True, False
            while not terminated:
                obs, _, terminated, truncated, _ = recorder.step(_single_policy(policy, obs, first))
                first = False
            if recorder.recording and recorder.recorded_frames:
                recorder.recorded_frames += [recorder.recorded_frames[-1]] * hold_frames
            if recorder.recording:
                recorder.stop_recording()
    finally:
        if isinstance(env, str):
            recorder.close()
    return sorted(set(folder.glob(f"{name_prefix}-episode-*.mp4")) - before)
