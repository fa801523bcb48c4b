"""Wire protocols: pure functions over OpenAI Chat Completions and Anthropic Messages
payloads (requests, responses, SSE streams, errors, usage). No I/O, no Django."""
