"""Write a small BERT with random weights into a folder, as transformers' save_pretrained does.

    python examples/save_tiny_bert.py saved-bert
    exporter export saved-bert

The folder (config.json + model.safetensors) is what a fine-tuning run leaves; exporting it needs
no wrapper class and no --input. Nothing is downloaded. Needs pip install 'exporter[transformers]'.
"""

from __future__ import annotations

import sys


def main(folder: str) -> None:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=1000,  # the token ids' range the export infers: [0, 999]
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,  # the sequence axis stays within it
    )
    model = BertModel(config)
    model.save_pretrained(folder)
    print(f"saved a random {sum(p.numel() for p in model.parameters()):,}-parameter BERT to {folder}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "saved-bert")
