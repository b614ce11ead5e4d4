# ruff: noqa: E501 - JWK members are long base64url strings
"""Published key pair of the shipped `ehiconnect-asymmetric` sandbox client.

These keys are public knowledge on purpose, like the sandbox client secret: they let anyone try
private_key_jwt client authentication against the sandbox. They must never be trusted anywhere
else. Configure your own client (`Client(kind="confidential-asymmetric", jwks=...)`) to use
your own keys.
"""

from __future__ import annotations

from typing import Any

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi"})

SANDBOX_CLIENT_PRIVATE_JWKS: dict[str, Any] = {
    "keys": [
        {
            "kty": "RSA",
            "kid": "sandbox-rs384",
            "alg": "RS384",
            "use": "sig",
            "e": "AQAB",
            "n": "xUhQhB-33lIHrrZ8I8Sel9qnB5zYEUSQRgnNVeoIyajh7UaokHJqp6cz5ESH6FI7ZSlOn8cl_R9lg6c5BbCjJn_GGSkrMBwYapiQYCLtlslC83rRl4cxAAFT-Knz8yft5yx6b6NPxP1Uyc-MLugKTVOGT5rsOnj1gr8xZ_EPuafzq0MQaKFKueY3K3leVxWwOUd93yId5NgTiWUN5eKRsZcmu5RxrCIb8E4SwPcCcJpekyLolaFJliKQQE3Lgp9k7HhE5KDSdsA5-VF1GPRoc6lDZk23GuTe5lYoFo0_pEPIQUS501nOADyKzMdVE7s7J8mhDAFcgWjRo_ZELPWzRw",
            "d": "F--8koYFWXyFzBqow0Tm99vNaldga-_wEAoTwjnW08j26JgrJE44R0aP6EFcZWwczXBj8W-eBLFGMDbI7LolgX_9TtjiPEBxwfU9hzyVq-GYNac66PIRQu6Q_AR67I91W8LXdCt80T-U2wugoaGr0P1dDX7pl0qigeOldfbCBq91q5VV35Dw4br_c6Q6MqZW2Cf01Fd4rXYPg0xVFjdtN8j5JMimWiJSr7MGQ8dT2F6aWe4tmQFtwiZYd68mjmE3evl-pW4rbY0Y90hL3ygt9B-9dNaY8nAjU1GDE6Wgs3TSZciTrarXDvls-kI0Fa7YTATl77C6meHgE83-9bbkMQ",
            "p": "9j_7MY74Tq4J-Z135o96vThumiMqNtEYUga0nkaHDUzjWcS7sIafQMkxTv_C5fS9HbYUyQ2Z4J1JvLOxcMZsR6buMkokJieB5-L_YYhSDCfadBF5d4rI2zAceaBXQmr4GY2gGgV_4VgMnjZLEH4MLRPR3lVlS86PJ0qh3VRv6wk",
            "q": "zRf-TVWPr8yBYbXD-0baVcVWM6njB30LU_ZmuDxSRipRGvU430bdSRXoiR0GUkIoQ8woT__o4vL79oA06p3mteZPDQaG557t7M__1gFVtmuVPPedECZmwZzOwDTgVG-fhYmkCmRrRR9rigo1R1iqsBtKiLvIQkerja9GpAvQL88",
            "dp": "Q3IWvOYpwHMOrF2i33Vg6r6wHGuRPl5ayOypP8iVaOEsTAQEXD8jEz2H0dlfalh0C9U5MDAXe1vZPGQDL55JPf7Mst13tTOQ8xBLXk1WG5o2zR-UI1fR16b_xZhTDg_6UBVoSnhDJFdXbWX1fVjowNfy3XCKRA8ZSmu4lcRwuvE",
            "dq": "VGqeyngAN2zmiDBHpYKpVYpvC77OaoOmiP2vk_-IIcdDMORkb0p8xJtW5jDjLDJ83kMHCL6dveQjn3dv0G4DyzUrroHUPzvkVIfcltpfzEEF4V1N8ZrMyr5fPy_EchyrvUxFD937ZS0kl2HSQjaVsvzYteUM7XMQgrX1TopqO3M",
            "qi": "sA39BFZgHcxF_HCNKZMC0w3U8OzLNO2Ub4wX0idHqgSQsRzFLCOM7EX_qKH6dx07Hcyn4-BvtlRe7tbpj_4cIzUAMUx5Dcz6JbLikP-iPKhL3NG4AtJRm6yEB49pC1CntNvkEnjIp5mYFfI0y-PEZtUbKCrghHKgUrUtVJILhgk",
        },
        {
            "kty": "EC",
            "kid": "sandbox-es384",
            "alg": "ES384",
            "use": "sig",
            "crv": "P-384",
            "x": "dlb_Bpa6yYISRDj4euUQ78Jy4jzG7WommGrq2V7F8OarC30uOrHdJFnVxH3SGZ8a",
            "y": "_eGPG2xlR-rs0jSsxGp1SYePMJ718O0083hsa8hgPY0ZG1DJLcQ84y1hcU59zonq",
            "d": "QHHmSN_mm37dWeWUacv1lzosefb7ulsWICzczv0zQHXXDmg3IFDEcKeOYSeKzL2n",
        },
    ]
}


def public_jwks(private_jwks: dict[str, Any]) -> dict[str, Any]:
    """The same JWKS with every private member removed."""
    return {
        "keys": [
            {k: v for k, v in key.items() if k not in _PRIVATE_MEMBERS}
            for key in private_jwks["keys"]
        ]
    }


SANDBOX_CLIENT_PUBLIC_JWKS: dict[str, Any] = public_jwks(SANDBOX_CLIENT_PRIVATE_JWKS)
