"""The CTranslate2 conversion decodes exactly like the PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def test_ct2_float_greedy_matches_torch_greedy(tmp_path: Path) -> None:
    import sentencepiece as spm

    from models.marian.export import EOS_ID
    from models.marian.runtime import CT2Translator, DecodeOptions
    from tests.conftest import make_tiny_marian, multi30k_lines

    ct2_dir, model, spm_model = make_tiny_marian(tmp_path, pieces=200, max_positions=128, layers=2,
                                                 quantization=None, seed=3)
    pad = model.config.pad_token_id
    tr = CT2Translator(ct2_dir)
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    sources = multi30k_lines("val.en", 6)
    opts = DecodeOptions(beam_size=1, max_decoding_length=12)
    ct2_out = tr.translate_pieces([tr.encode_source(s) for s in sources], opts)
    for src, ct2_pieces in zip(sources, ct2_out, strict=True):
        ids = torch.tensor([[*sp.encode(src), EOS_ID]])
        gen = model.generate(input_ids=ids, num_beams=1, do_sample=False, max_new_tokens=12,
                             decoder_start_token_id=pad, bad_words_ids=[[pad]],
                             eos_token_id=EOS_ID, pad_token_id=pad, forced_eos_token_id=None)
        torch_ids = [int(i) for i in gen[0, 1:] if int(i) != EOS_ID]
        assert len(ct2_pieces) > 0
        assert [sp.id_to_piece(i) for i in torch_ids][: len(ct2_pieces)] == ct2_pieces
