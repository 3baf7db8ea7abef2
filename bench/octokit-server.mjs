// The anchor: @octokit/webhooks' Node middleware (verifies, parses, runs handlers; stores nothing).
import http from "node:http";
import { Webhooks, createNodeMiddleware } from "@octokit/webhooks";

const webhooks = new Webhooks({ secret: process.env.BENCH_SECRET });
webhooks.onAny(() => {});
const port = Number(process.env.PORT || 18091);
http
  .createServer(createNodeMiddleware(webhooks, { path: "/webhook" }))
  .listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
