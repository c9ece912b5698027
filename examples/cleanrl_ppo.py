"""PPO on a RAM task in one file, in the style of CleanRL's ppo.py: what a CleanRL user writes for a new env.

    python examples/cleanrl_ppo.py --env-id RAM/MNIST-v0 --total-timesteps 200000

The env is the native vector env, ``gym.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``:
Dict observations (the glimpse and where it was taken) and Dict actions (a location and a label). The agent is
CleanRL's: an MLP actor-critic, a Gaussian over the location and a categorical over the label, with no memory
of earlier glimpses (``agents/`` holds the recurrent RAM agent). The vector env resets with Gymnasium's
NEXT_STEP mode: the step after an episode ends starts the next one and ignores its action, so those steps are
masked out of the losses and cut the advantage chain.
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical, Normal

import ram_env  # noqa: F401  (registers the RAM/... ids)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="RAM/MNIST-v0")
    p.add_argument("--data-dir", default=None, help="the MNIST folder (default: $RAM_DATA_DIR, else ./data)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=200_000)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--num-steps", type=int, default=24, help="steps per env per rollout")
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--clip-coef", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    return p.parse_args(argv)


def flat(obs) -> torch.Tensor:
    """A batch of Dict observations as one float vector each: the glimpse's pixels, then its location."""
    glimpse = torch.as_tensor(obs["glimpse"]).flatten(1)
    return torch.cat([glimpse, torch.as_tensor(obs["location"])], 1)


def layer(n_in, n_out, std=np.sqrt(2)):
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, std)
    nn.init.constant_(linear.bias, 0.0)
    return linear


class Agent(nn.Module):
    def __init__(self, n_obs: int, n_classes: int):
        super().__init__()
        self.critic = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0))
        self.body = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh())
        self.location_mean = layer(64, 2, 0.01)
        self.location_logstd = nn.Parameter(torch.full((2,), -1.0))
        self.label_logits = layer(64, n_classes, 0.01)

    def get_value(self, x):
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x, location=None, label=None):
        h = self.body(x)
        where = Normal(torch.tanh(self.location_mean(h)), self.location_logstd.exp())
        what = Categorical(logits=self.label_logits(h))
        if location is None:
            location, label = where.sample(), what.sample()
        logprob = where.log_prob(location).sum(-1) + what.log_prob(label)
        entropy = where.entropy().sum(-1) + what.entropy()
        return location, label, logprob, entropy, self.get_value(x)


def main(argv=None) -> dict:
    args = parse_args(argv)
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_updates = args.total_timesteps // batch_size
    torch.manual_seed(args.seed)
    envs = gym.make_vec(args.env_id, args.num_envs, vectorization_mode="vector_entry_point", data_dir=args.data_dir)
    n_obs = int(np.prod(envs.single_observation_space["glimpse"].shape)) + 2
    agent = Agent(n_obs, int(envs.single_action_space["label"].n))
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    shape = (args.num_steps, args.num_envs)
    obs = torch.zeros((*shape, n_obs))
    locations, labels = torch.zeros((*shape, 2)), torch.zeros(shape, dtype=torch.long)
    logprobs, rewards, dones, values, valid = (torch.zeros(shape) for _ in range(5))

    next_obs, _ = envs.reset(seed=args.seed)
    next_obs = flat(next_obs)
    autoreset = np.zeros(args.num_envs, bool)  # these envs start a new episode on the next step
    start, history = time.time(), []
    for update in range(1, num_updates + 1):
        answers = []
        for step in range(args.num_steps):
            obs[step], valid[step] = next_obs, torch.as_tensor(~autoreset, dtype=torch.float32)
            with torch.no_grad():
                location, label, logprob, _, value = agent.get_action_and_value(next_obs)
            locations[step], labels[step], logprobs[step], values[step] = location, label, logprob, value
            action = {"location": location.clamp(-1, 1).numpy(), "label": label.numpy()}
            next_obs, reward, terminated, truncated, info = envs.step(action)
            ended = terminated | truncated
            rewards[step], dones[step] = torch.as_tensor(reward, dtype=torch.float32), torch.as_tensor(ended)
            answers += reward[ended].tolist()
            next_obs, autoreset = flat(next_obs), ended

        with torch.no_grad():  # GAE; an ended episode neither bootstraps nor passes its advantage back
            next_value = agent.get_value(next_obs)
            advantages, lastgaelam = torch.zeros_like(rewards), 0
            for t in reversed(range(args.num_steps)):
                following = next_value if t == args.num_steps - 1 else values[t + 1]
                nonterminal = 1.0 - dones[t]
                delta = rewards[t] + args.gamma * following * nonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nonterminal * lastgaelam
            returns = advantages + values

        b = dict(obs=obs.reshape(-1, n_obs), locations=locations.reshape(-1, 2), labels=labels.reshape(-1))
        b |= {k: v.reshape(-1) for k, v in dict(logprobs=logprobs, adv=advantages, ret=returns).items()}
        b_inds = np.flatnonzero(valid.reshape(-1).numpy())  # the steps that restarted an episode taught nothing
        for _ in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start_at in range(0, len(b_inds), minibatch_size):
                mb = b_inds[start_at : start_at + minibatch_size]
                _, _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b["obs"][mb], b["locations"][mb], b["labels"][mb]
                )
                ratio = (newlogprob - b["logprobs"][mb]).exp()
                adv = b["adv"][mb]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((newvalue - b["ret"][mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        accuracy = float(np.mean(answers)) if answers else float("nan")
        history.append(dict(update=update, episodes=len(answers), accuracy=accuracy, loss=float(loss)))
        print(
            f"update {update}/{num_updates}  steps {update * batch_size}  episodes {len(answers)}  "
            f"accuracy {accuracy:.3f}  loss {float(loss):.4f}  {int(update * batch_size / (time.time() - start))} SPS"
        )
    envs.close()
    return dict(history=history, agent=agent)


if __name__ == "__main__":
    main()
