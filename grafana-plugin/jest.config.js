// Jest for the plugin's frontend: the shared settings in .config/, as
// @grafana/create-plugin lays them out; add project settings here.
module.exports = {
  ...require('./.config/jest.config'),
};
