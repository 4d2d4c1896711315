"""The documents' printed labels in en, es, zh and ar, and which languages a document carries.

Every document is in English (the language of international trade documents) and, where the
buyer's country speaks one of the others officially, in that language too: labels are printed
"English / other". The JSON names stay UN/CEFACT's; only the PDF is translated.
"""

from __future__ import annotations

LANGUAGES = ("en", "es", "zh", "ar")
_BY_COUNTRY = {
    **dict.fromkeys(
        (
            "ES",
            "MX",
            "AR",
            "CO",
            "CL",
            "PE",
            "VE",
            "EC",
            "GT",
            "CU",
            "BO",
            "DO",
            "HN",
            "PY",
            "SV",
            "NI",
            "CR",
            "PA",
            "UY",
        ),
        "es",
    ),
    **dict.fromkeys(("CN", "TW", "HK", "MO"), "zh"),
    **dict.fromkeys(
        ("AE", "SA", "EG", "QA", "KW", "BH", "OM", "JO", "MA", "DZ", "TN", "IQ", "LB", "LY"),
        "ar",
    ),
}

LABELS: dict[str, dict[str, str]] = {
    "commercial_invoice": {
        "en": "Commercial invoice",
        "es": "Factura comercial",
        "zh": "商业发票",
        "ar": "فاتورة تجارية",
    },
    "packing_list": {
        "en": "Packing list",
        "es": "Lista de empaque",
        "zh": "装箱单",
        "ar": "قائمة التعبئة",
    },
    "certificate_of_origin": {
        "en": "Application for a certificate of origin",
        "es": "Solicitud de certificado de origen",
        "zh": "原产地证书申请",
        "ar": "طلب شهادة منشأ",
    },
    "seller": {
        "en": "Seller / exporter",
        "es": "Vendedor / exportador",
        "zh": "卖方/出口商",
        "ar": "البائع / المصدر",
    },
    "buyer": {
        "en": "Buyer / consignee",
        "es": "Comprador / destinatario",
        "zh": "买方/收货人",
        "ar": "المشتري / المرسل إليه",
    },
    "document": {"en": "Document", "es": "Documento", "zh": "单据", "ar": "المستند"},
    "version": {"en": "Version", "es": "Versión", "zh": "版本", "ar": "الإصدار"},
    "issued": {"en": "Issued", "es": "Emitido", "zh": "签发日期", "ar": "تاريخ الإصدار"},
    "order": {"en": "Order", "es": "Pedido", "zh": "订单", "ar": "الطلب"},
    "shipment": {"en": "Shipment", "es": "Envío", "zh": "货运", "ar": "الشحنة"},
    "incoterm": {
        "en": "Delivery terms",
        "es": "Condiciones de entrega",
        "zh": "交货条款",
        "ar": "شروط التسليم",
    },
    "route": {"en": "From / to", "es": "Origen / destino", "zh": "起运地/目的地", "ar": "من / إلى"},
    "line": {"en": "Line", "es": "Línea", "zh": "行", "ar": "سطر"},
    "product": {"en": "Product", "es": "Producto", "zh": "产品", "ar": "المنتج"},
    "hs": {"en": "HS code", "es": "Código SA", "zh": "HS编码", "ar": "رمز النظام المنسق"},
    "origin": {"en": "Origin", "es": "Origen", "zh": "原产地", "ar": "المنشأ"},
    "quantity": {"en": "Quantity", "es": "Cantidad", "zh": "数量", "ar": "الكمية"},
    "unit_price": {"en": "Unit price", "es": "Precio unitario", "zh": "单价", "ar": "سعر الوحدة"},
    "amount": {"en": "Amount", "es": "Importe", "zh": "金额", "ar": "المبلغ"},
    "total": {"en": "Total", "es": "Total", "zh": "合计", "ar": "المجموع"},
    "in_words": {
        "en": "Amount in words",
        "es": "Importe en letras",
        "zh": "大写金额",
        "ar": "المبلغ كتابةً",
    },
    "package": {
        "en": "Package (SSCC)",
        "es": "Bulto (SSCC)",
        "zh": "包装 (SSCC)",
        "ar": "الطرد (SSCC)",
    },
    "lot": {"en": "Lot", "es": "Lote", "zh": "批号", "ar": "التشغيلة"},
    "declaration": {
        "en": "The exporter applies for a certificate stating that the goods above originate"
        " in the country shown.",
        "es": "El exportador solicita un certificado que acredite que las mercancías arriba"
        " indicadas son originarias del país señalado.",
        "zh": "出口商申请签发证书,证明上述货物原产于所示国家。",
        "ar": "يطلب المصدر شهادة تثبت أن البضائع المذكورة أعلاه منشؤها البلد المبين.",
    },
    "supersedes": {
        "en": "Corrects version",
        "es": "Corrige la versión",
        "zh": "更正版本",
        "ar": "يصحح الإصدار",
    },
    "anchored": {
        "en": "SHA-256 of this file is anchored on the TraceHub ledger; check it with"
        " `tracehub verify`.",
        "es": "El SHA-256 de este archivo está anclado en el registro de TraceHub.",
        "zh": "本文件的 SHA-256 已锚定在 TraceHub 账本上。",
        "ar": "بصمة SHA-256 لهذا الملف مثبتة في سجل TraceHub.",
    },
}


def languages_for(buyer_country: str | None) -> list[str]:
    """English, plus the buyer's country's language where it is one of es, zh, ar."""
    other = _BY_COUNTRY.get(buyer_country or "")
    return ["en", other] if other else ["en"]


def label(key: str, languages: list[str]) -> str:
    """The label in each language, joined with " / "."""
    texts = LABELS[key]
    return " / ".join(texts[lang] for lang in languages)
