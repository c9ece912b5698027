"""Rendering: frames, the human window, GIFs, videos and the play-it-yourself game (SDL_VIDEODRIVER=dummy)."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pygame
import pytest
from PIL import Image

import ram_env  # noqa: F401
from ram_env import play, recording, render
from ram_env.env import GlimpseEnv
from ram_env.sensor import Retina
from ram_env.vector import GlimpseVectorEnv


@pytest.fixture(autouse=True)
def no_display_left():
    """Every test starts and must end with the display shut down."""
    assert not pygame.display.get_init()
    yield
    leaked = pygame.display.get_init()
    pygame.display.quit()
    assert not leaked, "the test left pygame's display initialised"


def fast_human_env(data_dir, **kwargs) -> GlimpseEnv:
    env = GlimpseEnv(render_mode="human", data_dir=data_dir, split="test", **kwargs)
    env.metadata = {**env.metadata, "render_fps": 1000}  # no waiting in tests
    return env


def hand_state(canvas_size, location, t=1, answer=None, label=3, n_patches=3, patch_size=12, scale=2):
    retina = Retina(canvas_size, patch_size, n_patches, scale)
    state = {
        "canvas": np.zeros((canvas_size, canvas_size), np.uint8),
        "history": np.array([location], np.float32),
        "glimpse": np.zeros((n_patches, 1, patch_size, patch_size), np.float32),
        "t": t,
        "answer": answer,
        "label": label,
    }
    return state, retina


def run_episode(env, label=None):
    """Step a single env to its end, answering ``label`` (default: a wrong class); return the last info."""
    obs, _ = env.reset(seed=0)
    terminated = False
    core = env.unwrapped.task
    while not terminated:
        answer = (int(core.label[0]) + 1) % 10 if label is None else label
        obs, _, terminated, _, info = env.step({"location": np.array([0.3, -0.2], np.float32), "label": answer})
    return info


# ------------------------------------------------------------------------------------------------ frames


@pytest.mark.parametrize("task", ["RAM/MNIST-v0", "RAM/ClutteredMNIST100-v0"])
def test_rgb_array_frames_have_the_documented_shape(data_dir, task):
    env = gym.make(task, render_mode="rgb_array", data_dir=data_dir, split="test")
    layout = render.frame_layout(env.unwrapped.task.retina)
    env.reset(seed=1)
    frames = [env.render()]
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(env.action_space.sample())
        frames.append(env.render())
    assert len(frames) == env.unwrapped.task.n_glimpses + 1
    for frame in frames:
        assert frame.shape == (layout.height, layout.width, 3) and frame.dtype == np.uint8
    assert layout.width % 2 == 0 and layout.height % 2 == 0  # video encoders want even sides
    assert 250 <= layout.canvas_side <= 300  # a 28 px digit is readable
    env.close()


@pytest.mark.parametrize("location", [(0.0, 0.0), (-0.5, 0.3), (0.45, 0.6), (0.12, -0.6)])
@pytest.mark.parametrize("canvas_size", [28, 60])
def test_boxes_are_drawn_at_the_pixels_the_location_maps_to(canvas_size, location):
    small = canvas_size == 28
    state, retina = hand_state(canvas_size, location, patch_size=8 if small else 12, n_patches=2 if small else 3)
    layout = render.frame_layout(retina)
    frame = render.draw_frame(state, retina, 8)
    k, (x0, y0) = layout.scale, layout.canvas_origin
    tl = retina.top_left(state["history"])[0]  # float32 locations, as the env keeps them
    # The finest box: its outline lies on the border blocks of its patch's canvas pixels.
    (cx, cy), side = tl[0], int(retina.sizes[0])
    assert 0 <= cx and cx + side <= canvas_size and 0 <= cy and cy + side <= canvas_size
    left, top, right, bottom = x0 + cx * k, y0 + cy * k, x0 + (cx + side) * k - 1, y0 + (cy + side) * k - 1
    mid_x, mid_y = (left + right) // 2, (top + bottom) // 2
    colour = render.scale_colour(0)
    for px, py in [(left, mid_y), (right, mid_y), (mid_x, top), (mid_x, bottom), (left, top), (right, bottom)]:
        assert tuple(frame[py, px]) == colour, (px, py)
    # Just outside the box and just inside its outline: the (black) canvas, no box colour.
    line = max(2, k // 5)
    for px, py in [(left - 1, mid_y), (right + 1, mid_y), (mid_x, top - 1), (left + line, mid_y + k)]:
        assert tuple(frame[py, px]) != colour, (px, py)
        assert tuple(frame[py, px]) == (0, 0, 0), (px, py)
    # Each scale has its own colour: the next box's left edge, where it is on the canvas.
    (cx1, cy1), side1 = tl[1], int(retina.sizes[1])
    if cx1 >= 0 and 0 <= cy1 and cy1 + side1 <= canvas_size:
        assert tuple(frame[y0 + (cy1 + side1 // 2) * k, x0 + cx1 * k]) == render.scale_colour(1)


def test_boxes_are_clipped_to_the_canvas():
    state, retina = hand_state(60, (-1.0, -1.0))  # every patch hangs off the top-left corner
    layout = render.frame_layout(retina)
    frame = render.draw_frame(state, retina, 8)
    (x0, y0), side = layout.canvas_origin, layout.canvas_side
    outside = np.ones(frame.shape[:2], bool)
    outside[y0 : y0 + side, x0 : x0 + side] = False
    outside[layout.patch_origins[0][1] - 4 :] = False  # the glimpse panel has its own coloured frames
    for i in range(retina.n_patches):
        assert not (frame[outside] == render.scale_colour(i)).all(axis=-1).any()
        # ...but the parts on the canvas are drawn: the right edge of each box.
        right = int(retina.top_left(np.array([[-1.0, -1.0]]))[0, i, 0]) + int(retina.sizes[i])
        assert tuple(frame[y0 + 1, x0 + right * layout.scale - 1]) == render.scale_colour(i)


def test_canvas_pixels_map_to_blocks():
    state, retina = hand_state(28, (0.9, 0.9), n_patches=1, patch_size=4)
    state["canvas"][5, 7] = 200  # row 5 = y, column 7 = x
    layout = render.frame_layout(retina)
    frame = render.draw_frame(state, retina, 6)
    k, (x0, y0) = layout.scale, layout.canvas_origin
    block = frame[y0 + 5 * k : y0 + 6 * k, x0 + 7 * k : x0 + 8 * k]
    assert (block == 200).all()
    assert (frame[y0 + 5 * k - 1, x0 + 7 * k] == 0).all() and (frame[y0 + 5 * k, x0 + 8 * k] == 0).all()


def test_the_last_frame_is_green_when_right_and_red_when_wrong():
    frames = {}
    for answer in (None, 3, 5):
        state, retina = hand_state(60, (0.1, 0.2), t=8, answer=answer, label=3)
        frames[answer] = render.draw_frame(state, retina, 8)
    layout = render.frame_layout(retina)
    (x0, y0), side = layout.canvas_origin, layout.canvas_side
    border = (y0 + side // 2, x0 - 2)  # on the border around the canvas
    assert tuple(frames[3][border]) == render.RIGHT_COLOUR
    assert tuple(frames[5][border]) == render.WRONG_COLOUR
    assert tuple(frames[None][border]) == render.CANVAS_BORDER
    footer = slice(layout.footer_y, layout.height)
    assert (frames[3][footer] == render.RIGHT_COLOUR).all(axis=-1).any()
    assert (frames[5][footer] == render.WRONG_COLOUR).all(axis=-1).any()
    assert not (frames[3] == frames[5]).all()


def test_the_real_env_colours_its_answer(data_dir):
    env = GlimpseEnv(render_mode="rgb_array", data_dir=data_dir, split="test")
    layout = render.frame_layout(env.task.retina)
    border = (layout.canvas_origin[1] + 10, layout.canvas_origin[0] - 2)
    run_episode(env, label=None)
    assert tuple(env.render()[border]) == render.WRONG_COLOUR
    env.reset(seed=0)
    truth = int(env.task.label[0])
    info = run_episode(env, label=truth)
    assert info["correct"] and tuple(env.render()[border]) == render.RIGHT_COLOUR


def test_step_text_changes_every_step(data_dir):
    env = GlimpseEnv(render_mode="rgb_array", data_dir=data_dir, split="test", start="center")
    env.reset(seed=0)
    header = slice(0, render.HEADER)
    first = env.render()[header]
    env.step({"location": np.zeros(2, np.float32), "label": 0})  # same place: only the text changes
    assert not (env.render()[header] == first).all()


def test_render_before_reset_does_not_crash(data_dir):
    env = GlimpseEnv(render_mode="rgb_array", data_dir=data_dir)
    assert env.render().dtype == np.uint8
    vec = GlimpseVectorEnv(2, render_mode="rgb_array", data_dir=data_dir)
    assert vec.render().dtype == np.uint8


# ------------------------------------------------------------------------------------------------ tiles


def test_tile_places_frames_row_by_row():
    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(5)]
    grid = render.tile(frames, pad=1)
    assert grid.shape == (2 * 4 + 1, 3 * 6 + 2, 3)
    assert (grid[:4, :6] == 0).all() and (grid[:4, 7:13] == 1).all() and (grid[5:, 7:13] == 4).all()
    assert (grid[5:, 14:] == 0).all()  # the empty slot
    assert render.tile(frames[:1]) is frames[0]
    assert render.tile(frames, cols=5, pad=0).shape == (4, 30, 3)


def test_vector_env_rgb_array_is_a_tiled_grid(data_dir):
    vec = gym.make_vec(
        "RAM/TranslatedMNIST60-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        render_mode="rgb_array",
        data_dir=data_dir,
    )
    layout = render.frame_layout(vec.unwrapped.task.retina)
    vec.reset(seed=0)
    grid = vec.render()
    assert grid.dtype == np.uint8 and grid.shape == (2 * layout.height + 4, 2 * layout.width + 4, 3)
    single = render.draw_frame(vec.unwrapped.frame_state(3), vec.unwrapped.task.retina, vec.unwrapped.task.n_glimpses)
    assert (grid[layout.height + 4 :, layout.width + 4 :] == single).all()
    one = GlimpseVectorEnv(1, render_mode="rgb_array", data_dir=data_dir)
    one.reset(seed=0)
    assert one.render().shape == (
        render.frame_layout(one.task.retina).height,
        render.frame_layout(one.task.retina).width,
        3,
    )


# ------------------------------------------------------------------------------------------- human mode


def test_human_mode_runs_an_episode_and_releases_the_display(data_dir):
    env = fast_human_env(data_dir)
    run_episode(env)
    assert pygame.display.get_init()
    assert pygame.display.get_surface().get_size() == (
        render.frame_layout(env.task.retina).width,
        render.frame_layout(env.task.retina).height,
    )
    env.close()
    assert not pygame.display.get_init()
    env.close()  # twice is fine


def test_two_human_envs_share_one_window(data_dir):
    a, b = (
        fast_human_env(data_dir),
        fast_human_env(data_dir, translated_size=60, n_patches=3, patch_size=12, n_glimpses=8),
    )
    a.reset(seed=0)
    b.reset(seed=1)
    la, lb = render.frame_layout(a.task.retina), render.frame_layout(b.task.retina)
    assert pygame.display.get_surface().get_size() == (la.width + lb.width + render.GAP, max(la.height, lb.height))
    run_episode(a)
    run_episode(b)
    a.close()
    assert pygame.display.get_init()  # b still shows
    assert pygame.display.get_surface().get_size() == (lb.width, lb.height)
    b.reset(seed=2)
    b.close()
    assert not pygame.display.get_init()


def test_closing_the_window_stops_rendering_cleanly(data_dir):
    env = fast_human_env(data_dir)
    env.reset(seed=0)
    assert not env.window_closed
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    env.step({"location": np.zeros(2, np.float32), "label": 0})  # its render sees the QUIT
    assert not pygame.display.get_init()
    assert env.window_closed
    run_episode(env)  # the env still works, without a window
    assert not pygame.display.get_init()
    env.close()


def test_watch_plays_episodes_and_stops_when_the_window_closes(data_dir):
    env = gym.make("RAM/MNIST-v0", render_mode="human", data_dir=data_dir, split="test")
    env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 1000}
    policy = recording.random_policy(env.action_space, seed=0)
    results = recording.watch(env, policy, n_episodes=2, hold=0.01)
    assert len(results) == 2 and all(isinstance(r, bool) for r in results)
    assert pygame.display.get_init()
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
    assert recording.watch(env, policy, indices=[0, 1, 2], hold=0) == []
    assert not pygame.display.get_init()
    env.close()


# -------------------------------------------------------------------------------------------- recording


def test_record_episodes_and_gif(data_dir, tmp_path):
    vec = GlimpseVectorEnv(4, render_mode="rgb_array", data_dir=data_dir, split="test")
    calls = []

    def policy(obs, first):
        calls.append(first)
        assert obs["glimpse"].shape[0] == 4
        return recording.random_policy(vec.single_action_space, 0)(obs, first)

    frames = recording.record_episodes(vec, policy, indices=[5, 6, 7, 8])
    assert len(frames) == vec.task.n_glimpses + 1 and calls == [True] + [False] * (vec.task.n_glimpses - 1)
    assert list(vec.task.index) == [5, 6, 7, 8]
    assert all(f.shape == frames[0].shape and f.dtype == np.uint8 for f in frames)

    path = recording.record_gif(
        vec,
        recording.random_policy(vec.single_action_space, 0),
        tmp_path / "sub" / "ep.gif",
        indices=[0, 1, 2, 3],
        fps=5,
    )
    with Image.open(path) as gif:
        assert gif.n_frames == vec.task.n_glimpses + 1
        assert gif.size == (frames[0].shape[1], frames[0].shape[0])
        assert gif.info["loop"] == 0
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert durations[0] == 200 and durations[-1] > durations[0]  # a pause on the last frame

    small = recording.save_gif(frames, tmp_path / "small.gif", max_side=200)
    with Image.open(small) as gif:
        assert max(gif.size) == 200


@pytest.mark.parametrize("device", [None, "cpu"])
def test_record_episodes_freezes_an_env_that_answered_early(data_dir, device):
    vec = GlimpseVectorEnv(
        2, render_mode="rgb_array", data_dir=data_dir, split="test", answer="any_step", device=device
    )
    n = vec.task.n_glimpses
    steps = []

    def policy(obs, first):  # env 0 answers at its first step, env 1 looks at every glimpse
        steps.append(first)
        return {"location": np.zeros((2, 2), np.float32), "label": np.zeros(2, np.int64), "stop": np.array([1, 0])}

    frames = recording.record_episodes(vec, policy, indices=[5, 6])
    assert len(frames) == n + 1 and steps == [True] + [False] * (n - 1)  # until env 1's episode ends
    width = (frames[0].shape[1] - 4) // 2  # two frames side by side, 4 pixels apart
    env0 = [f[:, :width] for f in frames]
    env1 = [f[:, -width:] for f in frames]
    assert not np.array_equal(env0[0], env0[1])  # its answer is drawn ...
    assert all(np.array_equal(env0[1], f) for f in env0[2:])  # ... and kept, not its restart on a new image
    assert all(not np.array_equal(a, b) for a, b in zip(env1, env1[1:]))  # env 1 goes on looking
    assert not np.array_equal(vec.render()[:, :width], env0[-1])  # the env itself has moved on to other episodes


def test_single_env_recording_passes_the_stop_flag(data_dir, tmp_path):
    env = GlimpseEnv(render_mode="human", data_dir=data_dir, split="test", answer="any_step")

    def answer_at_once(obs, first):
        return {"location": np.zeros((1, 2), np.float32), "label": np.zeros(1, np.int64), "stop": np.ones(1)}

    assert len(recording.watch(env, answer_at_once, indices=[0, 1], hold=0)) == 2
    assert env.unwrapped.task.t[0] == 1  # answered after the first glimpse
    env.close()


def test_record_episodes_needs_rgb_array(data_dir):
    with pytest.raises(ValueError, match="rgb_array"):
        recording.record_episodes(GlimpseVectorEnv(2, data_dir=data_dir), lambda o, f: None)


def test_record_video_says_what_to_install(data_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moviepy" else real(name, *a))
    env = gym.make("RAM/MNIST-v0", render_mode="rgb_array", data_dir=data_dir)
    with pytest.raises(gym.error.DependencyNotInstalled, match=r"pip install -e '\.\[video\]'"):
        recording.record_video(env, recording.random_policy(env.action_space), tmp_path)


def test_record_video_writes_one_file_per_episode(data_dir, tmp_path):
    pytest.importorskip("moviepy")
    env = gym.make("RAM/MNIST-v0", render_mode="rgb_array", data_dir=data_dir, split="test")
    paths = recording.record_video(
        env, recording.random_policy(env.action_space, 0), tmp_path / "videos", indices=[0, 1]
    )
    assert len(paths) == 2 and all(p.stat().st_size > 0 for p in paths)
    env.close()


# ---------------------------------------------------------------------------------------- gymnasium check


@pytest.mark.parametrize("task", ["RAM/MNIST-v0", "RAM/ClutteredMNIST100-v0"])
def test_check_env_with_render(data_dir, task):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(task, data_dir=data_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # also makes the env in every render mode and renders it
    assert not [str(w.message) for w in caught if "render" in str(w.message).lower()]


# ------------------------------------------------------------------------------------------------- play


def test_pixel_to_location_inverts_location_to_pixel():
    retina = Retina(60, 12, 3, 2)
    layout = render.frame_layout(retina)
    (x0, y0), side, k = layout.canvas_origin, layout.canvas_side, layout.scale
    assert layout.pixel_to_location((x0 - 1, y0)) is None and layout.pixel_to_location((x0, y0 + side)) is None
    np.testing.assert_allclose(layout.pixel_to_location((x0, y0)), [-1 + 1 / side, -1 + 1 / side], atol=1e-6)
    np.testing.assert_allclose(layout.pixel_to_location((x0 + side - 1, y0 + side - 1)), [1 - 1 / side] * 2, atol=1e-6)
    # Clicking in canvas pixel (cx, cy) centres the glimpse there: the finest patch's middle is that pixel.
    for cx, cy in [(30, 30), (10, 47), (55, 3)]:
        location = layout.pixel_to_location((x0 + cx * k + k // 2, y0 + cy * k))
        tl = retina.top_left(location[None])[0, 0]
        assert (tl + retina.sizes[0] // 2 - 1 <= (cx, cy)).all() and ((cx, cy) <= tl + retina.sizes[0] // 2).all()
        np.testing.assert_allclose(layout.location_to_pixel(location), (x0 + cx * k + k // 2 + 0.5, y0 + cy * k + 0.5))


def click_on_canvas_pixel(layout, cx, cy):
    x0, y0 = layout.canvas_origin
    pos = (x0 + cx * layout.scale + 1, y0 + cy * layout.scale + 1)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))


@pytest.mark.parametrize("right", [True, False])
def test_play_event_loop(data_dir, right):
    env = gym.make("RAM/MNIST-v0", render_mode="rgb_array", data_dir=data_dir, split="test", start="center")
    game = play.Game(env, n_episodes=1, seed=0)
    core = env.unwrapped.task
    truth = int(core.label[0])
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_0 + (truth + 1) % 10))  # too early: ignored
    clicks = [(3, 4), (20, 9), (14, 14), (27, 0), (9, 22)]
    for cx, cy in clicks:
        click_on_canvas_pixel(game.layout, cx, cy)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(1, 1), button=1))  # off the canvas: ignored
    digit = truth if right else (truth + 1) % 10
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=getattr(pygame, f"K_KP{digit}")))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE))  # next: ends after 1 episode
    score, played = game.run(max_frames=100)
    assert (score, played) == (int(right), 1)
    history = env.unwrapped.frame_state()["history"]
    assert len(history) == 6
    tl = core.retina.top_left(history[1:])[:, 0] + core.retina.sizes[0] // 2
    assert [tuple(p) for p in tl] == clicks
    assert not pygame.display.get_init()


def test_play_quits_on_escape_and_shows_prompts(data_dir):
    env = gym.make("RAM/MNIST-v0", render_mode="rgb_array", data_dir=data_dir, split="test")
    game = play.Game(env, seed=0)
    assert game.prompt()[0].startswith("click where to look (2/6)")
    game.look(np.zeros(2, np.float32))
    for _ in range(4):
        game.look(np.array([0.5, 0.5], np.float32))
    assert game.phase == "answer" and game.prompt()[0].startswith("type the digit")
    game.answer(int(env.unwrapped.task.label[0]))
    assert game.phase == "result" and game.prompt()[1] == render.RIGHT_COLOUR
    game.draw()
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
    assert game.run(max_frames=100) == (1, 1)
    assert game.phase == "look"  # the space started a new episode before Esc


def test_play_lets_the_person_answer_early_on_a_task_with_early_answers(data_dir):
    env = gym.make("RAM/MNIST-v0", render_mode="rgb_array", data_dir=data_dir, split="test", answer="any_step")
    game = play.Game(env, n_episodes=1, seed=0)
    assert "or type the digit" in game.prompt()[0]
    game.look(np.array([0.5, 0.5], np.float32))
    truth = int(env.unwrapped.task.label[0])
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_0 + truth))  # after 2 of 6 glimpses
    assert game.run(max_frames=100) == (1, 1)
    assert game.phase == "result" and env.unwrapped.task.t[0] == 2
    assert env.unwrapped.frame_state()["answer"] == truth


def keys(*names: str) -> None:
    for name in names:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=getattr(pygame, f"K_{name}")))


def last_glimpse(game) -> None:
    while game.phase == "look":
        game.look(np.zeros(2, np.float32))


def test_play_takes_both_labels_of_a_pair_left_to_right_and_backspace_takes_the_first_back(data_dir):
    env = gym.make("RAM/MNISTPairs100-v0", render_mode="rgb_array", data_dir=data_dir, split="test")
    game = play.Game(env, n_episodes=1, seed=0)
    last_glimpse(game)
    assert game.prompt()[0] == "type the 2 digits, left to right (0-9)"
    first, second = (int(d) for d in env.unwrapped.task.truth[0])
    game.type_key((first + 1) % 10)
    assert game.phase == "answer" and game.prompt()[0].endswith(f": {(first + 1) % 10}_")
    keys("BACKSPACE", str(first), str(second))  # the wrong first digit taken back; the second key answers
    assert game.run(max_frames=100) == (1, 1)
    assert env.unwrapped.frame_state()["answer"].tolist() == [first, second]


def test_play_takes_a_sum_over_nine_as_two_keys_and_a_smaller_one_at_enter(data_dir):
    env = gym.make("RAM/MNISTPairSum100-v0", render_mode="rgb_array", data_dir=data_dir, split="test")
    game = play.Game(env, seed=0)
    last_glimpse(game)
    assert game.prompt()[0] == "type the sum (0-18), then Enter"
    game.type_key(1)
    game.type_key(9)  # 19 is out of range: ignored
    assert game.phase == "answer" and game.entry == "1"
    game.enter()  # 1 alone
    assert game.phase == "result" and env.unwrapped.frame_state()["answer"] == 1
    game.next()
    last_glimpse(game)
    game.type_key(1)
    game.type_key(2)  # no digit more could stay in range: answered at once
    assert game.phase == "result" and env.unwrapped.frame_state()["answer"] == 12
    game.close()


def test_play_answers_where_the_digit_is_with_a_click_on_its_centre(data_dir):
    env = gym.make("RAM/TranslatedMNIST60-v0", render_mode="rgb_array", data_dir=data_dir, target="location")
    game = play.Game(env, n_episodes=1, seed=0)
    last_glimpse(game)
    assert game.prompt()[0] == "click on the centre of the digit"
    game.type_key(3)  # no keys on a location task
    assert game.phase == "answer"
    centre = game.layout.location_to_pixel(env.unwrapped.task.truth[0])
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=tuple(int(v) for v in centre), button=1))
    assert game.run(max_frames=100) == (1, 1)
    np.testing.assert_allclose(env.unwrapped.frame_state()["point"], env.unwrapped.task.truth[0], atol=0.05)
    kwargs = dict(render_mode="rgb_array", data_dir=data_dir, target="location", answer="any_step")
    early = gym.make("RAM/TranslatedMNIST60-v0", **kwargs)
    game = play.Game(early, seed=0)
    assert game.prompt()[0].endswith("or press Enter to answer")
    game.enter()  # after one glimpse: the next click answers
    game.click(tuple(int(v) for v in game.layout.location_to_pixel(early.unwrapped.task.truth[0])))
    assert game.phase == "result" and game.correct and early.unwrapped.task.t[0] == 1
    game.close()


def test_play_main_plays_your_image_folder_in_colour_asking_for_one_of_its_twelve_classes(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for c in range(12):
        (tmp_path / "pets" / f"kind{c:02d}").mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / f"kind{c:02d}" / f"{i}.png")
    seen = []

    def run(game, max_frames=None):
        last_glimpse(game)
        seen.append((game.env.spec.id, game.obs["glimpse"].shape[1], game.prompt()[0]))
        game.close()
        return 0, 0

    monkeypatch.setattr(play.Game, "run", run)
    assert play.main(["--image-folder", str(tmp_path / "pets"), "--seed", "0"]) == 0
    assert seen == [("RAM/Images-v0", 3, "type the class (0-11), then Enter")]


def test_play_main_returns_0_when_the_game_ends(data_dir, monkeypatch, capsys):
    escape = [pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE)]
    monkeypatch.setattr(pygame.event, "get", lambda: escape)
    assert play.main(["--data-dir", data_dir, "--seed", "0", "--task", "RAM/TranslatedMNIST60-v0"]) == 0
    assert capsys.readouterr().out == "score: 0/0\n"
    assert not pygame.display.get_init()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--episodes", "0"], "argument --episodes: must be a positive integer, got '0'"),
        (["--episodes", "two"], "argument --episodes: must be a positive integer, got 'two'"),
        (["--task", "RAM/CIFAR-v0"], "argument --task: invalid choice: 'RAM/CIFAR-v0'"),
        (["--split", "dev"], "argument --split: invalid choice: 'dev'"),
        (["--data", "ImageNet"], "argument --data: invalid choice: 'ImageNet'"),
        (["--data", "CIFAR10", "--image-folder", "pets"], "argument --image-folder: not allowed with argument --data"),
        (["--target", "where"], "argument --target: invalid choice: 'where'"),
        (["--n-objects", "0"], "argument --n-objects: must be a positive integer, got '0'"),
    ],
)
def test_play_bad_flags_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        play.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_play_bad_data_folder_is_one_line_and_exit_2(tmp_path, capsys):
    corrupt = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not an idx file")
    labels = (0x801).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x03"  # a valid IDX file of one label
    (corrupt.parent / "t10k-labels-idx1-ubyte").write_bytes(labels)
    assert play.main(["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ram-play: error: ") and str(corrupt) in err


def test_play_an_image_folder_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys):
    assert play.main(["--image-folder", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ram-play: error: ") and str(tmp_path / "nowhere") in err


def test_play_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "ram_env.play", "--episodes", "-1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1] == "ram-play: error: argument --episodes: must be a positive integer, got '-1'"
    )
