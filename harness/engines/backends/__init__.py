"""Backends behind one interface (base.Backend): vllm (default), hf (transformers + peft), openai,
fake (tests); factory.make_backend builds one by name."""
