// Drives the official Node SDKs against a running Tollgate; prints one JSON report.
// Usage: node clients.mjs BASE_URL API_KEY OPENAI_MODEL ANTHROPIC_MODEL
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [base, key, openaiModel, anthropicModel] = process.argv.slice(2);
const report = {};
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });

const completion = await openai.chat.completions.create({
  model: openaiModel, messages: [{ role: "user", content: "hello from node" }],
});
report.openai_text = completion.choices[0].message.content;
report.openai_cost = completion.usage.cost;

const stream = await openai.chat.completions.create({
  model: openaiModel, stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "stream from node" }],
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
report.openai_stream_text = text;
report.openai_stream_cost = usage?.cost;

try {
  await openai.chat.completions.create({ model: "no-such-model", messages: [] });
} catch (error) {
  report.openai_error = { status: error.status, class: error.constructor.name };
}

const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 20000 });
const message = await anthropic.messages.create({
  model: anthropicModel, max_tokens: 100,
  messages: [{ role: "user", content: "hello claude from node" }],
});
report.anthropic_text = message.content[0].text;
const astream = anthropic.messages.stream({
  model: anthropicModel, max_tokens: 100,
  messages: [{ role: "user", content: "stream claude" }],
});
const final = await astream.finalMessage();
report.anthropic_stream_text = final.content[0].text;
report.anthropic_stream_output_tokens = final.usage.output_tokens;
console.log(JSON.stringify(report));
