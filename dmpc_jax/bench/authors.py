"""The authors' own sampler as a row of ``make bench`` (``AUTHORS=<checkout of their release>``).

Their modules are imported unchanged from a checkout of
hrh6666/Flexible-Locomotion-Learning-with-Diffusion-Model-Predictive-Control (written against
commit 05dcb93) and built as their play path builds them (``play_diffuser.py``,
``DiffuserPlayRunner.__init__``, with ``Go2DiffuserCfgRunner``'s values): ``TemporalUnet`` dim 64
in ``GaussianDiffusion`` (K = 10, x0 prediction), ``ValueFunction`` dim 32 in ``ValueDiffusion``
as the guide (``ValueGuide``) and as the candidates' scorer (their ``reward_type="nn"`` with
``candidate_same_as_reward``), the ``BoxConstraint`` chain of the play config, ``GuidedPolicy``
with the play config's ``sample_kwargs`` (DDPM, scale 1, one guide step per reverse step). Random
weights (PyTorch's default initialisation): speed does not depend on them.

One plan is what their play step does per control tick for one robot: scale the observation,
sample N candidates with guidance and the constraint chain at every reverse step, rank them with
the value net (N > 1), add the (zero) action noise and take the first action.

``STAND_INS`` lists every change made around their code so that it runs without Isaac Gym or a
GPU; the page prints it.
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

import numpy as np

COMMIT = "05dcb93"
PACKAGE = Path("rsl_rl") / "rsl_rl"  # inside the checkout
NEEDED = (
    "modules/diffusion.py",
    "modules/temporal.py",
    "modules/helpers.py",
    "modules/constraints.py",
    "algorithms/diffuser.py",
    "utils/cfg_helpers.py",
    "utils/telemetry.py",
)

STAND_INS = (
    "`rsl_rl.modules` and `rsl_rl.algorithms` are entered as empty packages over their folders: "
    "their `__init__.py` import modules the release does not contain (`actor_critic_encode`, "
    "...) and PPO code (`ppo`, `rppo`) the sampler does not use; the sampler's own modules are "
    "imported from the files unchanged.",
    "`torch.Tensor.cuda` returns the tensor itself during a plan: `TemporalUnet.forward` and "
    "`ValueFunction.forward` call `.cuda()` (temporal.py); on a GPU the same calls are no-ops.",
    "The play script itself is not imported (it needs Isaac Gym); its construction is repeated "
    "here with the values of `Go2DiffuserCfgRunner` (go2_diffuser_config.py).",
    "Telemetry (`DiffusionTelemetry`, which copies every step's sample and sometimes saves it) "
    "is off: instrumentation, not planning.",
    "Random weights (PyTorch's default initialisation) instead of a trained checkpoint.",
)

# Go2DiffuserCfgRunner.policy.diff_obs_scale (go2_diffuser_config.py): lin vel, ang vel,
# gravity, command, joint pos, joint vel, last action, phase-like scalar
OBS_SCALE = [0.33] * 3 + [0.5] * 3 + [1.0] * 3 + [0.5] * 3 + [1.0] * 36 + [0.5]
HORIZON, OBS_DIM, ACT_DIM, EXECUTE = 24, 49, 12, 11


class AuthorsCheckoutError(ValueError):
    """The path given as the authors' checkout is missing or is not their release."""


def check_checkout(path: str | Path) -> Path:
    """``path`` as a checkout of the authors' release, or a clear error saying what is wrong."""
    root = Path(path).expanduser()
    how = (
        "pass a checkout of hrh6666/Flexible-Locomotion-Learning-with-Diffusion-Model-Predictive-"
        f"Control (commit {COMMIT}) as AUTHORS=<dir> (or --cfg.authors <dir>)"
    )
    if not root.is_dir():
        raise AuthorsCheckoutError(f"authors' checkout {root} does not exist: {how}")
    missing = [f for f in NEEDED if not (root / PACKAGE / f).is_file()]
    if missing:
        raise AuthorsCheckoutError(
            f"{root} is not a checkout of the authors' release: {PACKAGE}/ lacks "
            f"{', '.join(missing)}; {how}"
        )
    return root


def _package(name: str, folder: Path) -> None:
    mod = types.ModuleType(name)
    mod.__path__ = [str(folder)]
    sys.modules[name] = mod


def import_sampler(root: Path) -> dict:
    """Their sampler's modules, imported unchanged from the checkout (see ``STAND_INS``)."""
    root = check_checkout(root)
    try:
        import einops  # noqa: F401  (their helpers need it; part of the bench extra)
    except ImportError as e:
        raise ImportError("the authors' sampler needs einops: pip install -e '.[bench]'") from e
    src = root / PACKAGE
    sys.path.insert(0, str(src.parent))
    try:
        _package("rsl_rl.modules", src / "modules")
        _package("rsl_rl.algorithms", src / "algorithms")
        import rsl_rl.modules.constraints as constraints
        from rsl_rl.algorithms.diffuser import GuidedPolicy, ValueGuide
        from rsl_rl.modules.diffusion import GaussianDiffusion, ValueDiffusion
        from rsl_rl.modules.temporal import TemporalUnet, ValueFunction
        from rsl_rl.utils.cfg_helpers import instantiate_from_cfg
    finally:
        sys.path.remove(str(src.parent))
    return dict(constraints=constraints, GuidedPolicy=GuidedPolicy, ValueGuide=ValueGuide,
                GaussianDiffusion=GaussianDiffusion, ValueDiffusion=ValueDiffusion,
                TemporalUnet=TemporalUnet, ValueFunction=ValueFunction,
                instantiate_from_cfg=instantiate_from_cfg)  # fmt: skip


@contextlib.contextmanager
def _cpu_cuda():
    """``Tensor.cuda`` as the identity (their networks' forward calls it)."""
    import torch

    orig = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = orig


def build_plan(root: str | Path, seed: int = 0):
    """``plan(state [49] numpy, n) -> first action [12]``: their guided sampler for one robot."""
    import torch

    m = import_sampler(Path(root))
    torch.manual_seed(seed)
    common = dict(horizon=HORIZON, observation_dim=OBS_DIM, action_dim=ACT_DIM, n_timesteps=10,
                  clip_denoised=True, predict_epsilon=False, action_weight=10.0,
                  loss_discount=0.99, loss_weights=None)  # fmt: skip
    unet = m["TemporalUnet"](horizon=HORIZON, transition_dim=OBS_DIM + ACT_DIM, cond_dim=OBS_DIM,
                             dim=64, dim_mults=(1, 2, 4, 8), attention=True)  # fmt: skip
    diffusion = m["GaussianDiffusion"](unet, loss_type="l2", num_history=1, execute_num=EXECUTE,
                                       variance_clip=0.0, **common)  # fmt: skip
    if hasattr(diffusion, "set_early_cache"):
        diffusion.set_early_cache(enable=False, m_steps=7)
    value = m["ValueFunction"](horizon=HORIZON, transition_dim=OBS_DIM + ACT_DIM,
                               cond_dim=OBS_DIM, dim=32, dim_mults=(1, 2, 4, 8), out_dim=1)  # fmt: skip
    reward = m["ValueDiffusion"](model=value, loss_type="value_l2", **common)
    policy = m["GuidedPolicy"](
        guide=m["ValueGuide"](reward), diffusion_model=diffusion, scale=1.0, t_stopgrad=0,
        n_guide_steps=1, scale_grad_by_std=False, sample_type="ddpm", skip_type="quad",
        timesteps=10, eta=0.991,
    )  # fmt: skip
    policy.scale = torch.full((1,), 1.0)  # one robot (play: one per env)
    box = m["instantiate_from_cfg"](
        m["constraints"], "BoxConstraint", {"indices": "obs_qd", "low": -0.05, "high": 0.05}, "cpu"
    )
    policy.sample_kwargs["constraints"] = m["constraints"].ConstraintChain().add(box)
    obs_scale = torch.tensor(OBS_SCALE, dtype=torch.float32)

    def plan(state: np.ndarray, n: int) -> np.ndarray:
        with _cpu_cuda():
            s = torch.as_tensor(np.asarray(state, np.float32)) * obs_scale
            actions, _ = policy({0: s[None]}, batch_size=1, num_candidate=n, verbose=False,
                                candidate_reward_model=reward)  # fmt: skip
            actions = actions + torch.randn_like(actions) * 0.0  # action_noise_scale
            return actions[:, 0].detach().numpy()[0]

    return plan
