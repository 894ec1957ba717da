"""The loop and the samplers, against an analytic denoiser and against diffusers."""

import pytest
import torch

from glassdiff.config import SAMPLERS, scheduler_preset
from glassdiff.sampling import TrajectoryRecorder, initial_noise, sample
from glassdiff.algebra import PREDICTION_TYPES, add_noise, target, to_x0_and_eps
from glassdiff.schedulers import alpha_bar_at, make_scheduler


def analytic_denoiser(x0: torch.Tensor, scheduler, prediction_type: str):
    """Knows the clean latent, so it returns the exact prediction at any x_t."""

    def denoise(x_in, t, context):
        a = alpha_bar_at(scheduler, t[0])
        clean = x0.repeat(x_in.shape[0] // x0.shape[0], 1, 1, 1)
        return target(clean, (x_in - a**0.5 * clean) / (1 - a) ** 0.5, a, prediction_type)

    return denoise


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_x0_pred_recovers_clean_latent_given_true_noise(sampler, prediction_type):
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    config = {**scheduler_preset(), "prediction_type": prediction_type}
    scheduler = make_scheduler(sampler, config)
    recorder = TrajectoryRecorder()
    context = torch.zeros(2, 3, 8)
    out = sample(analytic_denoiser(x0, scheduler, prediction_type), scheduler, initial_noise((4, 8, 8), [0, 1]),
                 context=context, uncond_context=context, guidance_scale=3.0, steps=12, generators=[0, 1],
                 observers=(recorder,))
    assert len(recorder.records) == 12
    for record in recorder.records:
        if record.alpha_bar > 1e-3:  # nearer pure noise, float32 cannot pin x0 down through an eps output
            torch.testing.assert_close(record.x0_pred, x0, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=1e-3)


def test_guidance_one_is_the_conditional_prediction_alone():
    calls = []

    def denoise(x_in, t, context):
        calls.append(x_in.shape[0])
        return context.mean(dim=(1, 2)).view(-1, 1, 1, 1) * torch.ones_like(x_in)

    scheduler = make_scheduler("ddim", scheduler_preset())
    cond, uncond = torch.ones(1, 3, 8), torch.zeros(1, 3, 8)
    recorder = TrajectoryRecorder()
    sample(denoise, scheduler, initial_noise((4, 4, 4), [0]), context=cond, uncond_context=uncond, guidance_scale=1.0,
           steps=3, generators=[0], observers=(recorder,))
    assert calls == [1, 1, 1]  # the empty prompt is not even run
    for record in recorder.records:
        assert record.eps_uncond is None
        torch.testing.assert_close(record.eps, record.eps_cond)


def test_guidance_formula_mixes_the_two_predictions():
    def denoise(x_in, t, context):
        return context.mean(dim=(1, 2)).view(-1, 1, 1, 1) * torch.ones_like(x_in)

    scheduler = make_scheduler("ddim", {**scheduler_preset(), "prediction_type": "epsilon"})
    recorder = TrajectoryRecorder()
    sample(denoise, scheduler, initial_noise((4, 4, 4), [0]), context=torch.ones(1, 3, 8),
           uncond_context=torch.zeros(1, 3, 8), guidance_scale=2.5, steps=2, generators=[0], observers=(recorder,))
    record = recorder.records[0]
    torch.testing.assert_close(record.eps, record.eps_uncond + 2.5 * (record.eps_cond - record.eps_uncond))
    torch.testing.assert_close(record.eps, torch.full_like(record.eps, 2.5))


def test_initial_noise_is_per_seed_and_batch_consistent():
    batch = initial_noise((4, 8, 8), [5, 6, 7])
    single = initial_noise((4, 8, 8), [6])
    assert torch.equal(batch[1:2], single)
    assert not torch.equal(batch[0], batch[1])


def _context_echo(calls):
    def denoise(x_in, t, context):
        calls.append(x_in.shape[0])
        return context.mean(dim=(1, 2)).view(-1, 1, 1, 1) * torch.ones_like(x_in)

    return denoise


def test_guidance_zero_runs_only_the_empty_prompt():
    calls, recorder = [], TrajectoryRecorder()
    scheduler = make_scheduler("ddim", scheduler_preset())
    cond, uncond = torch.ones(1, 3, 8), torch.zeros(1, 3, 8)
    sample(_context_echo(calls), scheduler, initial_noise((4, 4, 4), [0]), context=cond, uncond_context=uncond,
           guidance_scale=0.0, steps=3, generators=[0], observers=(recorder,))
    assert calls == [1, 1, 1]
    for record in recorder.records:
        assert record.eps_cond is None
        torch.testing.assert_close(record.eps, record.eps_uncond)


def test_per_image_scales_equal_runs_at_each_scale():
    """A guidance sweep in one loop: each image as if run alone at its scale, with only the halves it needs."""
    scales = [0.0, 1.0, 3.0]
    cond, uncond = torch.full((3, 3, 8), 2.0), torch.full((3, 3, 8), -1.0)
    noise = initial_noise((4, 4, 4), [5, 5, 5])
    calls = []
    swept = sample(_context_echo(calls), make_scheduler("ddim", scheduler_preset()), noise, context=cond,
                   uncond_context=uncond, guidance_scale=scales, steps=4, generators=[5, 5, 5])
    assert calls == [4] * 4  # rows: empty prompt for s=0 and s=3, prompt for s=1 and s=3
    for k, s in enumerate(scales):
        alone = sample(_context_echo([]), make_scheduler("ddim", scheduler_preset()), noise[k:k + 1],
                       context=cond[:1], uncond_context=uncond[:1], guidance_scale=s, steps=4, generators=[5])
        torch.testing.assert_close(swept[k:k + 1], alone, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_the_algebra_round_trips_every_prediction_type(prediction_type):
    """x0 and noise -> x_t and the model's target -> x0 and noise again, at every noise level, float or tensor."""
    x0, noise = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.randn(2, 4, 8, 8, dtype=torch.float64)
    for alpha_bar in (0.999, 0.5, 0.01, torch.tensor([0.9, 0.1], dtype=torch.float64).view(2, 1, 1, 1)):
        x_t = add_noise(x0, noise, alpha_bar)
        x0_back, eps_back = to_x0_and_eps(target(x0, noise, alpha_bar, prediction_type), x_t, alpha_bar,
                                          prediction_type)
        assert torch.allclose(x0_back, x0) and torch.allclose(eps_back, noise)
