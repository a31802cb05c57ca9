"""SmoothGrad stopped at a layer, built on Captum's ``NoiseTunnel``."""

from __future__ import annotations

from typing import Optional

import captum.attr
import torch
from torch import Tensor

from ..core.checks import check_number, check_positive_int
from ._base import LayerSaliency

__all__ = ["LayerSmoothGrad"]


class _PerSampleNoiseTunnel(captum.attr.NoiseTunnel):
    """NoiseTunnel whose noise std differs per sample and comes from a generator.

    Captum's NoiseTunnel takes one float std per input tensor and draws from
    the global RNG; SmoothGrad scales the noise to each image's own range, and
    a private generator keeps a seeded call reproducible without touching the
    global RNG. Only the noise draw is replaced; expansion and averaging stay
    Captum's.
    """

    def __init__(self, attribution_method, generator: Optional[torch.Generator]):
        super().__init__(attribution_method)
        self.generator = generator

    def _add_noise_to_input(self, input: Tensor, stdev: Tensor, nt_samples_partition: int) -> Tensor:
        expanded = input.repeat_interleave(nt_samples_partition, dim=0)
        std = stdev.repeat_interleave(nt_samples_partition).view(-1, *([1] * (input.dim() - 1)))
        noise = torch.randn(
            expanded.shape, generator=self.generator, dtype=input.dtype, device=input.device
        )
        return expanded + noise * std


class LayerSmoothGrad(LayerSaliency):
    """SmoothGrad at the layer: noise on the input, gradient at the layer, averaged.

    HINT's default saliency (Sec. 3.1): ``1/n sum_n d f^e(x + eps_n) / d z``,
    ``eps_n ~ N(0, sigma^2)``. As in the SmoothGrad paper, ``sigma`` is
    ``noise_level`` times each image's own value range ``max(x) - min(x)``.

    ``attribute(inputs, target, n_samples=16, noise_level=0.15, seed=None)``
    returns N x C x h x w.
    """

    def attribute(
        self,
        inputs: Tensor,
        target=None,
        additional_forward_args: Optional[object] = None,
        n_samples: int = 16,
        noise_level: float = 0.15,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        nt_samples_batch_size: Optional[int] = None,
        attribute_to_layer_input: bool = False,
    ) -> Tensor:
        """Average layer gradient over ``n_samples`` noisy copies of each image.

        Args:
            n_samples: noisy copies per image.
            noise_level: noise std as a fraction of each image's value range.
            seed: seeds a private generator, so equal seeds give equal results.
            generator: a ``torch.Generator`` to draw from (instead of ``seed``);
                neither means a fresh, randomly seeded generator (torch's
                global RNG is never used).
            nt_samples_batch_size: evaluate copies in chunks of this many per
                image to bound memory.

        Other arguments are those of :meth:`LayerGradient.attribute`.

        Returns:
            Tensor shaped like the layer output (N x C x h x w).
        """
        check_positive_int("n_samples", n_samples)
        check_number("noise_level", noise_level, low=0.0)
        if nt_samples_batch_size is not None:
            check_positive_int("nt_samples_batch_size", nt_samples_batch_size)
        if seed is not None and generator is not None:
            raise ValueError("seed, generator: give one of them, not both")
        forward, target = self._prepare(inputs, target)
        if generator is None:
            generator = torch.Generator(device=inputs.device)
            # No seed: a fresh random one, drawn without touching torch's global RNG.
            generator.manual_seed(seed) if seed is not None else generator.seed()
        flat = inputs.detach().flatten(1)
        stdev = noise_level * (flat.max(dim=1).values - flat.min(dim=1).values)
        gradient = captum.attr.LayerGradientXActivation(
            forward, self.layer, self.device_ids, multiply_by_inputs=False
        )
        return _PerSampleNoiseTunnel(gradient, generator).attribute(
            inputs,
            nt_type="smoothgrad",
            nt_samples=n_samples,
            nt_samples_batch_size=nt_samples_batch_size,
            stdevs=(stdev,),
            target=target,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
        )
