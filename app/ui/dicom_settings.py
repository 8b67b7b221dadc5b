"""The "DICOM network" part of the Settings dialog: one PACS node, off by default.

Edits a :class:`~app.dicomnet.config.NetworkSettings`; :meth:`DicomNetworkBox.result` validates
through the config's own checks, so the dialog refuses an invalid AE title or port with the same
sentence the settings file loader would log.
"""

from __future__ import annotations

import dataclasses

from PySide6 import QtWidgets

from app.dicomnet.config import RETRIEVE_METHODS, DicomNode, NetworkSettings


class DicomNetworkBox(QtWidgets.QGroupBox):
    """Switch, local AE title, the PACS node, TLS and the optional storage SCP."""

    def __init__(self, settings: NetworkSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("DICOM network (optional; off by default)", parent)
        self._settings = settings
        node = settings.nodes[0] if settings.nodes else None
        form = QtWidgets.QFormLayout(self)
        self.enabled = QtWidgets.QCheckBox("Connect to the PACS below (nothing else is ever contacted)")
        self.enabled.setChecked(settings.enabled)
        form.addRow(self.enabled)
        self.local_ae = QtWidgets.QLineEdit(settings.local_ae_title)
        form.addRow("This app's AE title:", self.local_ae)
        self.node_name = QtWidgets.QLineEdit(node.name if node else "PACS")
        form.addRow("PACS name:", self.node_name)
        self.node_ae = QtWidgets.QLineEdit(node.ae_title if node else "")
        form.addRow("PACS AE title:", self.node_ae)
        self.node_host = QtWidgets.QLineEdit(node.host if node else "")
        form.addRow("PACS host:", self.node_host)
        self.node_port = QtWidgets.QSpinBox()
        self.node_port.setRange(1, 65535)
        self.node_port.setValue(node.port if node else 104)
        form.addRow("PACS port:", self.node_port)
        self.retrieve = QtWidgets.QComboBox()
        self.retrieve.addItems(list(RETRIEVE_METHODS))
        self.retrieve.setCurrentText(node.retrieve if node else "C-GET")
        form.addRow("Retrieve with:", self.retrieve)
        self.tls = QtWidgets.QCheckBox("TLS")
        self.tls.setChecked(bool(node and node.tls))
        self.tls_ca = QtWidgets.QLineEdit(node.tls_ca_file if node else "")
        self.tls_ca.setPlaceholderText("CA certificate file (PEM) of the PACS")
        tls_row = QtWidgets.QHBoxLayout()
        tls_row.addWidget(self.tls)
        tls_row.addWidget(self.tls_ca, 1)
        form.addRow("Security:", tls_row)
        self.timeout = QtWidgets.QDoubleSpinBox()
        self.timeout.setRange(0.5, 3600)
        self.timeout.setValue(settings.timeout_s)
        self.timeout.setSuffix(" s")
        form.addRow("Timeout:", self.timeout)
        self.scp = QtWidgets.QCheckBox("Storage SCP for C-MOVE (listens only while a C-MOVE runs)")
        self.scp.setChecked(settings.storage_scp)
        self.scp_host = QtWidgets.QLineEdit(settings.storage_scp_host)
        self.scp_port = QtWidgets.QSpinBox()
        self.scp_port.setRange(1, 65535)
        self.scp_port.setValue(settings.storage_scp_port)
        scp_row = QtWidgets.QHBoxLayout()
        scp_row.addWidget(self.scp_host, 1)
        scp_row.addWidget(self.scp_port)
        form.addRow(self.scp)
        form.addRow("SCP address:", scp_row)

    def result(self) -> NetworkSettings:
        """The edited settings; :class:`~app.dicomnet.errors.NodeConfigError` when invalid.

        With the link off and no PACS host the node is left out (nothing to validate yet).
        """
        nodes: tuple[DicomNode, ...] = ()
        if self.node_host.text().strip() or self.enabled.isChecked():
            old = self._settings.nodes[0] if self._settings.nodes else None
            nodes = (DicomNode(
                name=self.node_name.text().strip() or "PACS", ae_title=self.node_ae.text(),
                host=self.node_host.text().strip(), port=self.node_port.value(),
                retrieve=self.retrieve.currentText(), tls=self.tls.isChecked(),
                tls_ca_file=self.tls_ca.text().strip(),
                tls_cert_file=old.tls_cert_file if old else "",
                tls_key_file=old.tls_key_file if old else ""),
                *self._settings.nodes[1:])
        return dataclasses.replace(
            self._settings, enabled=self.enabled.isChecked(), local_ae_title=self.local_ae.text(),
            nodes=nodes, timeout_s=self.timeout.value(), storage_scp=self.scp.isChecked(),
            storage_scp_host=self.scp_host.text().strip(), storage_scp_port=self.scp_port.value())
