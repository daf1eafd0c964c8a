"""The paper's router: structured REINFORCE with gradient-based Thompson sampling.

Reimplemented from shared/PAPER.md ("Resource-efficient Inference with Foundation Model
Programs", COLM 2025), as a baseline to measure `adaptive` against:

- one ResNet-18 per call site (plain torch, `paper_resnet`), trained from scratch online, on
  the raw frame resized to `resolution` x `resolution`, one output per backend;
- selection by neural Thompson sampling: for each backend, back-propagate its output to all
  weights (g), sigma = sqrt(lambda * sum(g^2 / U)), draw value ~ N(output, (nu * sigma)^2),
  subtract cost_weight x cost, take the argmax; U starts at lambda and grows by g^2 of the
  chosen backend. lambda = 1e-4, nu = 0.1;
- learning every `retrain_every` = 64 inputs: 5 epochs of REINFORCE over the buffered
  (frame, backend, reward) with loss -mean(reward * log softmax(logits)[backend]), AdamW
  lr 1e-3, batch 16, then the buffer is cleared;
- credit only to the sites that ran on the input; the reward is the frame's reward as given
  (the paper's shape for binary tasks: TP +1000, TN +1, FP -100, FN -100, from feedback);
- cost only at selection, as cost_weight x a static cost: parameters in millions by default
  (the paper's proxy: 3,750 for a 3B VLM), or the scalar prior cost (`cost="prior"`).

Where the call-by-call interface or the paper's silence forces a choice:
- The paper draws all sites' decisions once per input before the program runs. The context
  is the frame alone, so drawing a site's decision at its first call on the frame is the same
  draw; later calls of that site on the frame reuse it. Sites that never run are never drawn,
  which makes this baseline a little cheaper than the paper's.
- Input resolution is not stated; the default is 224 (ResNet-18's native size), with pixels
  scaled by ImageNet statistics. Tests use 32 and a narrower network (`width`, 64 in
  ResNet-18) for time; bench/decision_cost.py runs 224 and width 64 and says so.
- "Predicted value" is read as the network's output (logit) for that backend.
- Gradients are taken only for the backends allowed on this call (the others cannot win).
- BatchNorm runs in eval mode to decide and in train mode to learn; a last training batch of
  one sample is skipped (train-mode BatchNorm needs two).
- Decisions of frames still waiting for feedback are kept for at most `max_pending` frames
  (oldest dropped) and are not part of `state_dict`; the replay buffer and optimiser are.
- Propensity is estimated by `propensity_samples` further draws from the same Gaussians.

torch is imported only inside this module's functions and classes: `import edgefmp` and every
other policy work without it (`pip install edgefmp[torch]`).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.arms import allowed_arms, param_costs, prior_costs
from edgefmp.policies.bandit import check_state
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo
from edgefmp.trace import Trace

log = logging.getLogger(__name__)

STATE_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PaperConfig:
    """The paper's hyper-parameters (defaults) and our few additions."""

    resolution: int = 224  # not stated in the paper; ResNet-18's native size
    lam: float = 1e-4
    nu: float = 0.1
    retrain_every: int = 64
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    # The paper sweeps this to trace accuracy against cost; 1e-4 x parameters in millions puts
    # a 72B VLM 7.3 logits below a free backend. Sweep it for your own curves.
    cost_weight: float = 1e-4
    cost: str = "params"  # "params": parameters in millions (the paper's); "prior": CostModel
    max_pending: int = 256  # frames waiting for feedback whose decisions are kept
    propensity_samples: int = 256
    seed: int = 0
    width: int = 64  # ResNet-18's; tests shrink it

    def __post_init__(self) -> None:
        positive = (
            "resolution",
            "width",
            "lam",
            "retrain_every",
            "epochs",
            "batch_size",
            "lr",
            "max_pending",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise PolicyError(f"paper: {name} must be > 0, got {getattr(self, name)}")
        if self.nu < 0 or self.cost_weight < 0 or self.propensity_samples < 0:
            raise PolicyError("paper: nu, cost_weight and propensity_samples must be >= 0")
        if self.cost not in ("params", "prior"):
            raise PolicyError(f"paper: cost must be 'params' or 'prior', got {self.cost!r}")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise PolicyError("the 'paper' policy needs torch: pip install 'edgefmp[torch]'") from exc
    return torch


@dataclass
class _Pending:
    """A frame's input tensor (uint8, 3 x R x R) and the backend drawn for each site so far."""

    x: Any
    arms: dict[str, Decision] = field(default_factory=dict)


class _SiteNet:
    """One call site's network, its Thompson-sampling accumulator U, optimiser and buffer."""

    def __init__(self, site_id: str, names: tuple[str, ...], costs: np.ndarray, config: PaperConfig) -> None:
        torch = _torch()
        from edgefmp.policies.paper_resnet import ResNet18

        self.names = names
        self.costs = np.asarray(costs, dtype=np.float64)
        self.config = config
        # A stable per-site seed, without touching torch's global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + zlib.crc32(site_id.encode()))
            self.model = ResNet18(len(names), config.width)
        self.model.eval()
        self.params = [p for p in self.model.parameters()]
        self.u = [torch.full_like(p, config.lam) for p in self.params]
        self.optimizer: Any = None
        self.buffer_x: list[Any] = []
        self.buffer_arm: list[int] = []
        self.buffer_reward: list[float] = []

    def make_optimizer(self) -> Any:
        if self.optimizer is None:
            self.optimizer = _torch().optim.AdamW(self.model.parameters(), lr=self.config.lr)
        return self.optimizer

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held per part: weights, BN buffers, U, optimiser moments, gradients, replay."""

        def nbytes(tensors: Any) -> int:
            return int(sum(t.numel() * t.element_size() for t in tensors))

        opt = 0
        if self.optimizer is not None:
            for state in self.optimizer.state.values():
                opt += nbytes(v for v in state.values() if hasattr(v, "numel"))
        return {
            "weights": nbytes(self.params),
            "buffers": nbytes(self.model.buffers()),
            "U": nbytes(self.u),
            "optimizer": opt,
            "grads": nbytes(p.grad for p in self.params if p.grad is not None),
            "replay": nbytes(self.buffer_x),
        }


class PaperPolicy(Policy):
    """The paper's structured REINFORCE + neural Thompson sampling router (see module doc).

    Keyword arguments are the fields of `PaperConfig`; `cost_model` turns prior costs into a
    scalar when `cost="prior"` (or a backend has no parameter count).
    """

    name = "paper"

    def __init__(self, cost_model: CostModel | None = None, **config: Any) -> None:
        unknown = set(config) - set(PaperConfig.__dataclass_fields__)
        if unknown:
            raise PolicyError(
                f"paper: unknown option(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(PaperConfig.__dataclass_fields__)}"
            )
        _torch()
        self.config = PaperConfig(**config)
        self.cost_model = cost_model or CostModel()
        self._rng = np.random.default_rng(self.config.seed)
        self._sites: dict[str, _SiteNet] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self.inputs_seen = 0
        self.retrainings = 0

    # ---------------------------------------------------------------------------- deciding

    def _site(self, site: SiteInfo) -> _SiteNet:
        net = self._sites.get(site.site_id)
        names = tuple(b.name for b in site.backends)
        if net is None or net.names != names:
            costs = (param_costs if self.config.cost == "params" else prior_costs)(site, self.cost_model)
            net = _SiteNet(site.site_id, names, costs, self.config)
            self._sites[site.site_id] = net
        return net

    def _input(self, context: DecisionContext) -> Any:
        """The frame resized to R x R, uint8 (3, R, R); zeros for a frame without pixels."""
        torch = _torch()
        r = self.config.resolution
        image = context.frame.image
        if image is None:
            return torch.zeros((3, r, r), dtype=torch.uint8)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        x = torch.nn.functional.interpolate(x, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        return x[0].round().clamp(0, 255).to(torch.uint8)

    def _pending_for(self, context: DecisionContext) -> _Pending:
        fid = context.frame.frame_id
        entry = self._pending.get(fid)
        if entry is None:
            entry = _Pending(self._input(context))
            self._pending[fid] = entry
            while len(self._pending) > self.config.max_pending:
                old, _ = self._pending.popitem(last=False)
                log.debug("paper: dropping the decisions of frame %s (no feedback yet)", old)
        return entry

    @staticmethod
    def _normalise(x: Any) -> Any:
        torch = _torch()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x.float() / 255.0 - mean) / std

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        mask = allowed_arms(site, context, self.name)
        entry = self._pending_for(context)
        drawn = entry.arms.get(site.site_id)
        if drawn is not None and mask[drawn.index]:
            return drawn
        decision = self._draw(self._site(site), entry.x, mask)
        entry.arms[site.site_id] = decision
        return decision

    def _draw(self, net: _SiteNet, x: Any, mask: np.ndarray) -> Decision:
        """One neural-TS draw among the allowed backends; U grows by the winner's g^2."""
        torch = _torch()
        cfg = self.config
        out = net.model(self._normalise(x[None]))[0]
        allowed = np.flatnonzero(mask)
        sigma = np.zeros(len(mask))
        grads: dict[int, list[Any]] = {}
        for i, a in enumerate(allowed):
            g = torch.autograd.grad(out[int(a)], net.params, retain_graph=i + 1 < len(allowed))
            grads[int(a)] = list(g)
            with torch.no_grad():
                parts = [(gi * gi / ui).sum() for gi, ui in zip(g, net.u, strict=True)]
                total = torch.stack(parts).sum()
            sigma[a] = np.sqrt(cfg.lam * float(total))
        mean = out.detach().numpy().astype(np.float64)
        std = cfg.nu * sigma
        penalty = cfg.cost_weight * net.costs
        sample = self._rng.normal(mean, std) - penalty
        index = int(allowed[np.argmax(sample[allowed])])
        with torch.no_grad():
            for ui, gi in zip(net.u, grads[index], strict=True):
                ui.add_(gi * gi)
        propensity = 1.0
        if cfg.propensity_samples and len(allowed) > 1:
            draws = self._rng.normal(mean[allowed], std[allowed], size=(cfg.propensity_samples, len(allowed)))
            wins = allowed[np.argmax(draws - penalty[allowed], axis=1)] == index
            propensity = (float(wins.sum()) + 1.0) / (cfg.propensity_samples + 1.0)
        return Decision(index, propensity=propensity)

    # ---------------------------------------------------------------------------- learning

    def update(self, trace: Trace, reward: float) -> None:
        entry = self._pending.pop(trace.frame_id, None)
        if entry is None:
            log.debug("paper: no decision recorded for frame %s; its reward is ignored", trace.frame_id)
            return
        if reward is None or not math.isfinite(reward):  # no label: the frame teaches nothing
            return
        ran = dict.fromkeys(c.site for c in trace.calls if c.site in entry.arms)
        for site_id in ran:
            net = self._sites[site_id]
            net.buffer_x.append(entry.x)
            net.buffer_arm.append(entry.arms[site_id].index)
            net.buffer_reward.append(float(reward))
        self.inputs_seen += 1
        if self.inputs_seen % self.config.retrain_every == 0:
            self.retrain()

    def retrain(self) -> None:
        """REINFORCE on every site's buffer (`epochs` passes, minibatches), then clear it."""
        torch = _torch()
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed + self.retrainings)
        for site_id, net in self._sites.items():
            n = len(net.buffer_arm)
            if n < 2:
                continue
            xs = torch.stack(net.buffer_x)
            arms = torch.tensor(net.buffer_arm, dtype=torch.long)
            rewards = torch.tensor(net.buffer_reward, dtype=torch.float32)
            opt = net.make_optimizer()
            net.model.train()
            for _ in range(cfg.epochs):
                order = torch.randperm(n, generator=gen)
                for start in range(0, n, cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    if len(idx) < 2:
                        continue
                    logp = torch.log_softmax(net.model(self._normalise(xs[idx])), dim=1)
                    loss = -(rewards[idx] * logp[torch.arange(len(idx)), arms[idx]]).mean()
                    opt.zero_grad(set_to_none=False)
                    loss.backward()
                    opt.step()
            opt.zero_grad(set_to_none=True)  # gradients are not needed between retrainings
            net.model.eval()
            log.debug("paper: site %s retrained on %d inputs", site_id, n)
            net.buffer_x.clear()
            net.buffer_arm.clear()
            net.buffer_reward.clear()
        self.retrainings += 1

    def memory_bytes(self) -> dict[str, dict[str, int]]:
        """Per site, the bytes each part of its state holds (see `_SiteNet.memory_bytes`)."""
        return {sid: net.memory_bytes() for sid, net in self._sites.items()}

    # ------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        sites: dict[str, Any] = {}
        for sid, net in self._sites.items():
            names = [n for n, _ in net.model.named_parameters()]
            site: dict[str, Any] = {
                "names": list(net.names),
                "costs": net.costs.copy(),
                "model": {k: v.detach().numpy().copy() for k, v in net.model.state_dict().items()},
                "U": {k: u.numpy().copy() for k, u in zip(names, net.u, strict=True)},
                "buffer_x": np.stack([x.numpy() for x in net.buffer_x])
                if net.buffer_x
                else np.zeros((0, 3, self.config.resolution, self.config.resolution), np.uint8),
                "buffer_arm": np.asarray(net.buffer_arm, dtype=np.int64),
                "buffer_reward": np.asarray(net.buffer_reward, dtype=np.float64),
            }
            if net.optimizer is not None:
                by_param = net.optimizer.state
                site["adamw"] = {
                    "step": {
                        k: float(by_param[p]["step"]) for k, p in zip(names, net.params, strict=True) if p in by_param
                    },
                    "exp_avg": {
                        k: by_param[p]["exp_avg"].numpy().copy()
                        for k, p in zip(names, net.params, strict=True)
                        if p in by_param
                    },
                    "exp_avg_sq": {
                        k: by_param[p]["exp_avg_sq"].numpy().copy()
                        for k, p in zip(names, net.params, strict=True)
                        if p in by_param
                    },
                }
            sites[sid] = site
        return {
            "policy": self.name,
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "inputs_seen": self.inputs_seen,
            "retrainings": self.retrainings,
            "sites": sites,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch = _torch()
        check_state(state, self.name, STATE_VERSION)
        self.config = PaperConfig(**state["config"])
        self.inputs_seen = int(state.get("inputs_seen", 0))
        self.retrainings = int(state.get("retrainings", 0))
        # The sampler restarts from a seed derived from progress: draws after a resume differ
        # from an uninterrupted run's, which Thompson sampling does not mind.
        self._rng = np.random.default_rng(self.config.seed + self.inputs_seen)
        self._pending.clear()
        self._sites = {}
        for sid, s in state["sites"].items():
            net = _SiteNet(sid, tuple(s["names"]), np.asarray(s["costs"]), self.config)
            try:
                net.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in s["model"].items()})
            except RuntimeError as exc:
                raise PolicyError(f"paper: saved network of site {sid} does not fit: {exc}") from exc
            names = [n for n, _ in net.model.named_parameters()]
            net.u = [torch.from_numpy(np.array(s["U"][k], dtype=np.float32)) for k in names]
            net.buffer_x = list(torch.from_numpy(np.array(s["buffer_x"], dtype=np.uint8)))
            net.buffer_arm = [int(a) for a in np.asarray(s["buffer_arm"]).reshape(-1)]
            net.buffer_reward = [float(r) for r in np.asarray(s["buffer_reward"]).reshape(-1)]
            if "adamw" in s:
                opt = net.make_optimizer()
                for k, p in zip(names, net.params, strict=True):
                    if k in s["adamw"]["exp_avg"]:
                        opt.state[p] = {
                            "step": torch.tensor(float(s["adamw"]["step"][k])),
                            "exp_avg": torch.from_numpy(np.array(s["adamw"]["exp_avg"][k], dtype=np.float32)),
                            "exp_avg_sq": torch.from_numpy(np.array(s["adamw"]["exp_avg_sq"][k], dtype=np.float32)),
                        }
            self._sites[sid] = net
