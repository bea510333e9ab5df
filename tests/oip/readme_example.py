# pip install 'tritonclient[http]' numpy   -- bet answers the Open Inference Protocol (KServe v2)
import os

import numpy as np
import tritonclient.http as httpclient

texts = ["What a wonderful film, I loved every minute.", "Dull, and far too long."]
client = httpclient.InferenceServerClient(os.environ.get("BET_URL", "127.0.0.1:8000"))
text = httpclient.InferInput("text", [len(texts)], "BYTES")
text.set_data_from_numpy(np.array(texts, dtype=object))
result = client.infer("bet", [text])
for t, label, confidence, epistemic in zip(texts, result.as_numpy("label"), result.as_numpy("confidence"),
                                           result.as_numpy("uncertainty_epistemic")):
    print(f"{label.decode()}\t{confidence:.3f}\tepistemic {epistemic:.3f}\t{t}")
