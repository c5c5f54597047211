"""A straightforward no-cache reference forward, for checking the engine's cached, pruned decode."""
from __future__ import annotations

import torch


@torch.no_grad()
def recompute_logits(adapter, prep, tokens: list[int], keep_rows: dict[int, torch.Tensor],
                     deepstack: torch.Tensor | None = None, prompt_pos: torch.Tensor | None = None,
                     next_pos: int | None = None) -> torch.Tensor:
    """Logits at the last prompt position and after every generated token, computed with no KV cache.

    The sequence is the prompt followed by ``tokens[:-1]``; entering layer ``k`` only the original
    sequence rows in ``keep_rows[k]`` (plus all generated tokens) stay. Positions are the originals,
    or ``prompt_pos`` (shaped like ``prep.position_ids``) with decoding from ``next_pos``.
    ``deepstack`` [K, N, d] (default: the encoding's): after layer i < K, row i of each alive
    visual token is added to its hidden state, as Qwen3-VL's text model does.
    """
    if deepstack is None:
        deepstack = prep.encoding.deepstack
    dev = prep.embeds.device
    gen = torch.tensor([tokens[:-1]], device=dev, dtype=torch.long)
    L = prep.input_ids.shape[1]
    emb = torch.cat([prep.embeds, adapter.embed_tokens(gen)], 1)
    n_gen = gen.shape[1]
    start = L + prep.rope_delta if next_pos is None else next_pos
    dec_pos = torch.arange(start, start + n_gen, device=dev)
    prompt_pos = prep.position_ids if prompt_pos is None else prompt_pos
    if prompt_pos.dim() == 3:
        pos = torch.cat([prompt_pos, dec_pos.view(1, 1, -1).expand(3, 1, -1)], -1)
    else:
        pos = torch.cat([prompt_pos, dec_pos.view(1, -1)], -1)
    rows = torch.arange(L + n_gen, device=dev)
    h = emb
    cos, sin = adapter.rotary_emb(h, pos)
    for i, layer in enumerate(adapter.layers):
        if i in keep_rows:
            keep = torch.cat([keep_rows[i].to(dev), torch.arange(L, L + n_gen, device=dev)])
            idx = torch.searchsorted(rows, keep)
            h, cos, sin, rows = h[:, idx], cos[:, idx], sin[:, idx], rows[idx]
        out = layer(h, attention_mask=None, position_embeddings=(cos, sin), position_ids=None,
                    past_key_values=None, use_cache=False)
        h = out[0] if isinstance(out, tuple) else out
        if deepstack is not None and i < deepstack.shape[0]:
            j = torch.searchsorted(prep.vis_pos, rows).clamp_(max=prep.vis_pos.numel() - 1)
            is_vis = prep.vis_pos[j] == rows
            h = h.clone()
            h[0, is_vis] += deepstack[i][j[is_vis]].to(h.dtype)
    n_out = n_gen + 1
    return adapter.lm_head(adapter.norm(h[:, -n_out:]))[0].float()


def kept_rows_after(prep, kept_visual_ids: torch.Tensor) -> torch.Tensor:
    """Original sequence rows alive when only ``kept_visual_ids`` of the visual tokens remain."""
    L = prep.input_ids.shape[1]
    alive = torch.ones(L, dtype=torch.bool, device=prep.embeds.device)
    alive[prep.vis_pos] = False
    alive[prep.vis_pos[kept_visual_ids.to(alive.device)]] = True
    return alive.nonzero().squeeze(1)


@torch.no_grad()
def unpruned_state(adapter, prep, run_layers: int = 0):
    """The engine's prefill state over the whole prompt, no stage, after its first ``run_layers`` layers."""
    from pruning_core.engine import PrefillState
    n = prep.layout.num_tokens
    st = PrefillState(adapter, prep, torch.arange(prep.input_ids.shape[1]), prep.embeds.clone(), torch.arange(n),
                      prep.visual_embeds, prep.encoding.deepstack)
    for i in range(run_layers):
        st.run_layer(i, None)
    return st


@torch.no_grad()
def masked_logits(adapter, prep, tokens: list[int], mask_for_layer) -> torch.Tensor:
    """Logits at the last prompt position and after every generated token, with no KV cache: the
    prompt followed by ``tokens[:-1]`` runs through every layer under the boolean attention mask
    ``mask_for_layer(i, causal)`` [T, T] (True = may attend; ``causal`` is the plain causal mask).
    Positions are the originals; rows are never removed, only masked."""
    dev = prep.embeds.device
    gen = torch.tensor([tokens[:-1]], device=dev, dtype=torch.long)
    L, n_gen = prep.input_ids.shape[1], gen.shape[1]
    h = torch.cat([prep.embeds, adapter.embed_tokens(gen)], 1)
    dec = torch.arange(L, L + n_gen, device=dev) + prep.rope_delta
    if prep.position_ids.dim() == 3:
        pos = torch.cat([prep.position_ids, dec.view(1, 1, -1).expand(3, 1, -1)], -1)
    else:
        pos = torch.cat([prep.position_ids, dec.view(1, -1)], -1)
    cos, sin = adapter.rotary_emb(h, pos)
    T = L + n_gen
    causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
    for i, lay in enumerate(adapter.layers):
        out = lay(h, attention_mask=mask_for_layer(i, causal).view(1, 1, T, T), position_embeddings=(cos, sin),
                  position_ids=None, past_key_values=None, use_cache=False)
        h = out[0] if isinstance(out, tuple) else out
    return adapter.lm_head(adapter.norm(h[:, L - 1:]))[0].float()
