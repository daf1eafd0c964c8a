"""An OpenAI-compatible chat server whose model is RapidOCR, so that programs calling
`patch.read_text()` can run on a machine without a vision-language model server.

edgefmp has no local backend kind that reads text; its `ocr` function goes to a `kind: remote`
backend (docs/REMOTE.md). This server answers the remote backend's ocr request (one user message
holding the prompt and a JPEG data URL) with the text RapidOCR reads in the image, top to bottom,
using the PP-OCR ONNX models that ship inside the `rapidocr-onnxruntime` wheel (no download).
It serves ocr only: any other request gets HTTP 400.

    pip install rapidocr-onnxruntime        # in its own environment: it pulls opencv-python
    python examples/servers/rapidocr_openai.py --port 8000
    edgefmp run examples/programs/read_text_demo.py --catalog examples/catalogs/ocr_remote.yaml --source VIDEO

It handles one request at a time per thread and has no authentication: run it on localhost or
a trusted network only.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

# The remote backend's ocr prompt starts with this (edgefmp.backends.remote_protocols).
OCR_PROMPT = "Read all the text in the image."
MAX_BODY_BYTES = 32 * 1024 * 1024

ReadText = Callable[[np.ndarray], str]  # a BGR uint8 image -> the text in it


def rapidocr_reader() -> ReadText:
    """RapidOCR with the models packaged in its wheel; lines joined top to bottom, left to right."""
    from rapidocr_onnxruntime import RapidOCR  # imported here: only the real server needs it

    engine = RapidOCR()

    def read(image: np.ndarray) -> str:
        found, _ = engine(image)
        lines = sorted(found or [], key=lambda item: (item[0][0][1], item[0][0][0]))  # top-left corner: y, then x
        return " ".join(str(item[1]) for item in lines)

    return read


def _decode_jpeg(url: str) -> np.ndarray:
    import cv2  # a dependency of rapidocr-onnxruntime (and of edgefmp)

    if not url.startswith("data:image/") or "," not in url:
        raise ValueError("image_url must be a base64 data URL")
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the image cannot be decoded")
    return image


def _ocr_request(body: Any) -> tuple[str, str]:
    """(prompt, image data URL) of an OpenAI chat request as edgefmp's remote backend sends it."""
    content = body["messages"][-1]["content"]
    if not isinstance(content, list):
        raise ValueError("expected a message whose content lists a text part and an image_url part")
    prompt = next(str(p["text"]) for p in content if p.get("type") == "text")
    url = next(str(p["image_url"]["url"]) for p in content if p.get("type") == "image_url")
    return prompt, url


def make_server(host: str, port: int, read_text: ReadText) -> ThreadingHTTPServer:
    """The server on (host, port) answering ocr requests with `read_text`; port 0 picks one."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._reply(404, {"error": {"message": f"no route {self.path}; POST /v1/chat/completions"}})
                return
            try:
                length = int(self.headers.get("content-length", "0"))
                if not 0 < length <= MAX_BODY_BYTES:
                    raise ValueError(f"body of {length} bytes; expected 1 to {MAX_BODY_BYTES}")
                prompt, url = _ocr_request(json.loads(self.rfile.read(length)))
                if not prompt.startswith(OCR_PROMPT):
                    raise ValueError(f"this server reads text only; the prompt must start with {OCR_PROMPT!r}")
                image = _decode_jpeg(url)
            except (ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
                self._reply(400, {"error": {"message": f"bad request: {type(exc).__name__}: {exc}"}})
                return
            text = read_text(image)
            self._reply(
                200,
                {
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                },
            )

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            out = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise here
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = make_server(args.host, args.port, rapidocr_reader())
    print(f"RapidOCR behind http://{args.host}:{server.server_port}/v1/chat/completions (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
